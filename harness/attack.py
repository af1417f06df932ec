"""Attacks: prompt-level ones turn behaviors into requests; weight-level ones tamper with the model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.model import Model
from harness.settings import Configured

if TYPE_CHECKING:
    from harness.defense import Defense
from harness.types import Behavior, Message, Request, Sampling


class Attack(Configured):
    """`describe()` is the name and the settings minus cosmetic ones."""

    name = "attack"
    option = "attack"

    def tamper(self, model: Model, defense: Defense | None = None) -> Model:
        """Weight-level attacks return another model (e.g. fine-tuned, with the objective the
        defense's fine-tuning API imposes); prompt-level ones return it unchanged."""
        return model

    def requests(self, behaviors: Sequence[Behavior], model: Model, sampling: Sampling) -> list[Request]:
        raise NotImplementedError

    def optimized_on(self, behaviors: Sequence[Behavior]) -> list[Behavior]:
        """Behaviors of this run the attack optimizes on and then also evaluates (e.g. a universal
        suffix's training behaviors): the contamination guard marks them. None by default."""
        return []

    def ask(self, behavior: Behavior, sampling: Sampling, **fields: Any) -> Request:
        """The plain chat for a behavior: one user turn holding its query."""
        fields.setdefault("messages", (Message(role="user", content=behavior.query()),))
        return Request(behavior_id=behavior.id, sampling=sampling, attack=self.name, **fields)
