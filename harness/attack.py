"""Attacks: prompt-level ones turn behaviors into requests; weight-level ones tamper with the model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.model.base import Model
from harness.settings import Configured

if TYPE_CHECKING:
    from harness.defense import Defense
    from harness.engine.base import Engine
from harness.types import Behavior, Completion, Message, Record, Request, Sampling


class Attack(Configured):
    """`describe()` is the name and the settings minus cosmetic ones."""

    name = "attack"
    option = "attack"
    target_engine: Engine | None = None  # the defended pipeline, once the run attaches it
    defense: Defense | None = None

    def attach(self, engine: Engine, defense: Defense) -> None:
        """The run hands over the defended engine before asking for requests: an attack that
        queries the target (pair) goes through the defense, i.e. it adapts to it."""
        self.target_engine, self.defense = engine, defense

    def adaptive(self) -> bool:
        """Whether this attack optimized against the defended pipeline (reports flag each
        (defense, attack) cell). Static attacks do not; searching attacks override this."""
        return False

    def tamper(self, model: Model, defense: Defense | None = None) -> Model:
        """Weight-level attacks return another model (e.g. fine-tuned, with the objective the
        defense's fine-tuning API imposes); prompt-level ones return it unchanged."""
        return model

    def requests(self, behaviors: Sequence[Behavior], model: Model, sampling: Sampling) -> list[Request]:
        raise NotImplementedError

    def follow_up(self, records: Sequence[Record]) -> list[Request]:
        """Multi-turn attacks (crescendo): the next round of requests, given the records of the last round's
        requests (generated now or reused from an earlier run, judged). The run loop asks again until it gets
        none; [] by default (one round). A re-run replays every round from the records, so conversations
        continue where a killed run stopped."""
        return []

    def take_failures(self) -> list[Completion]:
        """Requests the attack could not build (an attacker model that returned nothing usable), as completions
        with finish_reason "error": the run records each with an error verdict, never a judged one. The list
        is emptied; none by default."""
        failures, self.failures = getattr(self, "failures", []), []
        return failures

    def optimized_on(self, behaviors: Sequence[Behavior]) -> list[Behavior]:
        """Behaviors of this run the attack optimizes on and then also evaluates (e.g. a universal
        suffix's training behaviors): the contamination guard marks them. None by default."""
        return []

    def ask(self, behavior: Behavior, sampling: Sampling, **fields: Any) -> Request:
        """The plain chat for a behavior: one user turn holding its query."""
        fields.setdefault("messages", (Message(role="user", content=behavior.query()),))
        fields.setdefault("adaptive", self.adaptive())
        return Request(behavior_id=behavior.id, sampling=sampling, attack=self.name, **fields)
