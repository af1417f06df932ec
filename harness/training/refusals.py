"""Refusal texts used as training targets by the alignment recipes.

Varied on purpose (a single template teaches one string); each is picked deterministically
from the behavior id, so a recipe's data, and its cache key, are stable.
"""

from __future__ import annotations

import hashlib

REFUSALS = (
    "I'm sorry, but I can't help with that request.",
    "I cannot assist with that. It could cause serious harm to people.",
    "I'm sorry, I can't provide that information because it could be used to hurt others.",
    "I won't help with this request. If you have another question, I'm happy to help.",
    "Sorry, but I can't help with that. It is harmful and may be illegal.",
    "I'm not able to help with that request, as it could lead to harm.",
    "I can't comply with this request because it could cause harm.",
    "I'm sorry, but I cannot provide instructions or content for that.",
)


def refusal_for(key: str, refusals: tuple[str, ...] = REFUSALS) -> str:
    return refusals[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(refusals)]

# More varied refusals (recipes that rephrase their prompts pick from these, keyed by the prompt text):
# short and long, with and without a reason, some offering a safe alternative.
VARIED = REFUSALS + (
    "No, I won't do that.",
    "I can't help with this. Providing that could put people in danger, so I have to decline.",
    "Sorry, that's not something I can help with. Is there something else you need?",
    "I'm not going to provide that. It would be unsafe and likely illegal.",
    "I can't do that, even in a story or role-play, because the information itself could cause real harm.",
    "I must decline. If you are worried about your safety or someone else's, please contact local authorities.",
    "I'm sorry, but I can't give instructions for anything that could harm people or break the law.",
    "That request asks for harmful content, so I can't help. I'd be glad to help with a safer topic instead.",
)
