"""What a fine-tuning data set provides to attack=finetune."""

from __future__ import annotations

from typing import Any

from harness.model.base import Model
from harness.settings import Configured
from harness.training.loop import Example
from harness.types import Behavior, Message

Variant = tuple[dict[str, Any], tuple[Message, ...]]  # (request params, messages)


def ask(b: Behavior) -> tuple[Message, ...]:
    return (Message(role="user", content=b.query()),)


class FinetuneSet(Configured):
    """A data set for attack=finetune (`attack.data`); its describe() is part of the fine-tuned model's recipe."""

    name = "finetune_set"
    option = "attack.data"

    def describe(self) -> dict[str, Any]:
        return {"data": self.name, **self.settings.identity()}

    def examples(self, model: Model) -> list[Example]:
        """Training examples for `model` (the target; its chat template formats them)."""
        raise NotImplementedError

    def variants(self, messages: tuple[Message, ...]) -> list[Variant]:
        """The evaluation prompts derived from one plain request (default: the request itself)."""
        return [({}, messages)]
