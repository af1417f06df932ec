"""The baseline: ask the behavior as it is."""

from __future__ import annotations

from collections.abc import Sequence

from harness.attack import Attack
from harness.model.base import Model
from harness.types import Behavior, Request, Sampling


class DirectAttack(Attack):
    name = "direct"

    def requests(self, behaviors: Sequence[Behavior], model: Model, sampling: Sampling) -> list[Request]:
        return [self.ask(b, sampling) for b in behaviors]
