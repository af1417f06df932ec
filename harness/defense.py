"""Defenses: training ones `harden` the model, inference-time ones `wrap` the engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.engine import Engine
from harness.model import Model
from harness.settings import Configured
from harness.training import Example, Objective


class Defense(Configured):
    """`describe()` (part of the run hash) is the name and the settings minus cosmetic ones."""

    name = "none"
    option = "defense"

    def harden(self, model: Model) -> Model:
        return model

    def wrap(self, engine: Engine) -> Engine:
        return engine

    def evasion_cost(self) -> Callable[[Sequence[str]], list[float]] | None:
        """For adaptive attacks: per user text, how far it is from passing this defense's check
        (0 = it passes); an optimizing attack adds it to its loss. None: nothing to adapt to."""
        return None

    def fine_tuning_objective(self) -> Objective:
        """The objective a provider's fine-tuning API applies to user data (fine-tuning attacks
        train with it): plain SFT unless the defense controls fine-tuning (constrained_sft)."""
        return Objective()

    def fine_tuning_data(self, examples: list[Example]) -> list[Example]:
        """What the provider's fine-tuning API actually trains on, given the user's examples
        (fine-tuning attacks go through it): the user's data unless the defense mixes in its own."""
        return examples
