"""Judges label completions. A failure is a Verdict with `error` set, never a guess."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.types import Behavior, Completion, Verdict, content_hash


class Judge:
    name = "judge"

    def describe(self) -> dict[str, Any]:
        return {"judge": self.name}

    @property
    def id(self) -> str:
        return f"{self.name}@{content_hash(self.describe())}"

    def preflight(self) -> None:
        """Check what the judge needs (a key, a server, a package) before any generation; nothing by default."""

    def judge(self, items: Sequence[tuple[Behavior, Completion]]) -> list[Verdict]:
        raise NotImplementedError
