"""Found suffixes as test cases: one JSON line each, keyed by everything that produced them.

A test case is written as soon as its optimization ends, so an interrupted run keeps every
finished suffix and a re-run of the same configuration reuses them instead of optimizing
again. Later lines win over earlier ones with the same key. The file is also the transfer
format: `attack.suffixes=<file>` evaluates its suffixes on another model.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import filelock
from pydantic import Field

from harness.errors import DataError
from harness.store.records import latest_by_key
from harness.types import Frozen

log = logging.getLogger(__name__)


class Snapshot(Frozen):
    """The best suffix after `step` steps of the optimization that found a test case (a checkpoint)."""

    step: int
    suffix: str
    suffix_ids: tuple[int, ...]
    loss: float


class TestCase(Frozen):
    __test__ = False  # not a pytest class

    key: str
    mode: Literal["individual", "universal"]
    model: str  # id of the model the suffix was optimized on
    behaviors: tuple[str, ...]  # behavior ids it was optimized for
    suffix: str  # appended to the user turn: content = query + suffix
    suffix_ids: tuple[int, ...]
    loss: float  # best loss reached (mean target cross-entropy)
    initial_loss: float
    losses: tuple[float, ...]  # loss after each step (the chosen candidate's)
    steps: int  # steps run (fewer than configured after an early stop)
    restart: int  # which restart found it (seed = settings.seed + restart)
    stopped: Literal["steps", "loss", "judge"]  # why it stopped
    success: bool | None = None  # the early-stop judge's verdict on a greedy generation, if it checked
    exact: bool = True  # the engine's tokenization of the prompt equals the optimized tokens
    seconds: float = 0.0
    settings: dict[str, Any] = Field(default_factory=dict)
    snapshots: tuple[Snapshot, ...] = ()  # the best suffix at each checkpoint (attack.checkpoints)


class TestCaseStore:
    __test__ = False
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, TestCase]:
        if not self.path.exists():
            return {}
        return latest_by_key(self.path.read_text(encoding="utf-8"), TestCase, self.path, "GCG test cases")

    def read(self) -> list[TestCase]:
        """Every test case of a file given by the user (transfer); a clear error when there is none."""
        if not self.path.is_file():
            raise DataError(f"attack.suffixes={str(self.path)!r}: no such file (a GCG test-case file, JSON lines)")
        cases = list(self.load().values())
        if not cases:
            raise DataError(f"attack.suffixes={str(self.path)!r} holds no GCG test cases")
        return cases

    def append(self, case: TestCase) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(self.path) + ".lock"), open(self.path, "a", encoding="utf-8") as f:
            f.write(case.model_dump_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
