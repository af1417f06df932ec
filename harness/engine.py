"""Engines turn requests into completions.

`stream` yields completions batch by batch so the run loop can write each batch to disk as
soon as it exists; `generate` is the same, collected and in request order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from harness.model import Model
from harness.types import Completion, Request


class Engine:
    name = "engine"

    def __init__(self, model: Model) -> None:
        self.model = model

    def describe(self) -> dict[str, Any]:
        """Settings that change outputs (not speed); part of the run hash."""
        return {"engine": self.name}

    def stream(self, requests: Sequence[Request]) -> Iterator[list[Completion]]:
        raise NotImplementedError

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        order = {r.key: i for i, r in enumerate(requests)}
        out = [c for batch in self.stream(requests) for c in batch]
        return sorted(out, key=lambda c: (order[c.request.key], c.sample))
