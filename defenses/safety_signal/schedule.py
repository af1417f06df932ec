"""When generation re-checks the safety classification: frequent early, sparse later.

A check at step s classifies the trajectory after s generated tokens (s = 0: the query and any
prefill, before the first generated token). The default checks at 0, 1, 2, 4, 8, 16 and then
every 16 tokens: 8 checks in 64 tokens, each about one decoding step of extra compute.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from harness.types import Frozen


class CheckSchedule(Frozen):
    early: tuple[int, ...] = (0, 1, 2, 4, 8, 16)  # explicit check steps
    every: int = Field(16, ge=0)  # then every this many tokens after the last early step (0 = no more)

    @model_validator(mode="after")
    def _sorted(self) -> CheckSchedule:
        if any(s < 0 for s in self.early) or list(self.early) != sorted(set(self.early)):
            raise ValueError(f"early={list(self.early)}: check steps must be distinct, increasing and >= 0")
        if not self.early and not self.every:
            raise ValueError("a schedule needs early steps or every > 0")
        return self

    def due(self, step: int) -> bool:
        if step in self.early:
            return True
        last = self.early[-1] if self.early else 0
        return self.every > 0 and step > last and (step - last) % self.every == 0

    def steps(self, max_tokens: int) -> list[int]:
        return [s for s in range(max_tokens) if self.due(s)]
