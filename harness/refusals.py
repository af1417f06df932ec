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
