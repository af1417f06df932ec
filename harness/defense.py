"""Defenses: training ones `harden` the model, inference-time ones `wrap` the engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness.engine.base import Engine
from harness.model.base import Model
from harness.settings import Configured
from harness.training.loop import Example, Objective


class Defense(Configured):
    """`describe()` (part of the run hash) is the name and the settings minus cosmetic ones."""

    name = "none"
    option = "defense"

    def harden(self, model: Model) -> Model:
        return model

    def wrap(self, engine: Engine) -> Engine:
        return engine

    def evasion_cost(self) -> Callable[[Sequence[str], Sequence[str]], list[float]] | None:
        """For adaptive attacks: a function of (user texts, the answers the attack wants for them) giving,
        per text, how far it is from passing this defense's checks (0 = it passes); an optimizing attack
        adds it to its loss. None: nothing to adapt to."""
        return None

    def evasion_identity(self) -> dict[str, Any]:
        """Settings that change only what `evasion_cost` measures, not the defense's outputs (so not in
        describe()): an adaptive attack's cache key adds them."""
        return {}

    def fine_tuning_objective(self) -> Objective:
        """The objective a provider's fine-tuning API applies to user data (fine-tuning attacks
        train with it): plain SFT unless the defense controls fine-tuning (constrained_sft)."""
        return Objective()

    def fine_tuning_data(self, examples: list[Example]) -> list[Example]:
        """What the provider's fine-tuning API actually trains on, given the user's examples
        (fine-tuning attacks go through it): the user's data unless the defense mixes in its own."""
        return examples
