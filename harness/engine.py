"""Engines turn requests into completions.

`stream` yields completions batch by batch so the run loop can write each batch to disk as
soon as it exists; `generate` is the same, collected and in request order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from harness.model import Model
from harness.settings import Configured
from harness.types import Completion, Request


class Engine(Configured):
    """`describe()` (part of the run hash) is the name and the settings minus cosmetic ones (speed, progress)."""

    name = "engine"
    option = "engine"

    def __init__(self, model: Model, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        self.model = model

    def stream(self, requests: Sequence[Request]) -> Iterator[list[Completion]]:
        raise NotImplementedError

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        order = {r.key: i for i, r in enumerate(requests)}
        out = [c for batch in self.stream(requests) for c in batch]
        return sorted(out, key=lambda c: (order[c.request.key], c.sample))
