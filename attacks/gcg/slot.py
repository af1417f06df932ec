"""A behavior's chat split around the adversarial suffix.

The suffix sits at the end of the user turn, right after the query (`query + suffix`, no
separator: the suffix's own first token usually carries the space, e.g. " !"). The chat is
rendered by the model's own template with a placeholder in that spot, and split there:

    before (template text + query) | suffix tokens | after (end of turn, assistant header) | target

Every part is tokenized on its own; the re-tokenization filter (`tokens.round_trips`) keeps
only suffixes for which tokenizing the whole rendered prompt gives exactly these parts, so
the prompt the engine later sends is the one that was optimized.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError
from harness.model.base import Model
from harness.types import Behavior, Message

PLACEHOLDER = "{optim_str}"


@dataclass(frozen=True)
class SuffixSlot:
    behavior_id: str
    query: str
    target: str
    before: str  # rendered template text up to the suffix (ends with the query)
    after: str  # rendered template text after the suffix (end of turn, assistant header)
    before_ids: tuple[int, ...]
    after_ids: tuple[int, ...]
    target_ids: tuple[int, ...]

    @classmethod
    def build(cls, model: Model, behavior: Behavior, target: str | None = None) -> SuffixSlot:
        target = target if target is not None else behavior.target
        if not target:
            raise HarnessError(
                f"attack=gcg: behavior {behavior.id!r} has no affirmative target (Behavior.target) to optimize towards. "
                f"Use a benchmark with targets (advbench, harmbench) or give one: attack.default_target='Sure, here is'"
            )
        query = behavior.query()
        text = model.template_text([Message(role="user", content=query + PLACEHOLDER)])
        if text.count(PLACEHOLDER) != 1:
            raise HarnessError(
                f"model {model.name!r}: its chat template does not render the user turn verbatim "
                f"(the suffix placeholder appears {text.count(PLACEHOLDER)} times), so a GCG suffix cannot be placed in it"
            )
        before, after = text.split(PLACEHOLDER)
        tok = model.tokenizer

        def ids(s: str) -> tuple[int, ...]:
            return tuple(tok(s, add_special_tokens=False).input_ids) if s else ()

        return cls(behavior.id, query, target, before, after, ids(before), ids(after), ids(target))

    def message(self, suffix: str) -> Message:
        """The user turn carrying the suffix, as the engine will send it."""
        return Message(role="user", content=self.query + suffix)

    @staticmethod
    def message_for(behavior: Behavior, suffix: str) -> Message:
        return Message(role="user", content=behavior.query() + suffix)

    def prompt_ids(self, suffix_ids: list[int] | tuple[int, ...]) -> list[int]:
        return [*self.before_ids, *suffix_ids, *self.after_ids]
