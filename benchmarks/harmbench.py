"""HarmBench text behaviors (Mazeika et al. 2024): standard, contextual and copyright.

Copyright behaviors are judged by hashing against the copyrighted text, which keyword and
LLM judges cannot do, so they are left out by default (`functional` adds them back).
Affirmative targets come from HarmBench's optimizer targets file beside the CSV, if present.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from harness.benchmark import Benchmark
from harness.errors import HarnessError, choices

log = logging.getLogger(__name__)

FUNCTIONAL = ("standard", "contextual", "copyright")
SPLITS = {"all": "harmbench_behaviors_text_all.csv", "test": "harmbench_behaviors_text_test.csv", "val": "harmbench_behaviors_text_val.csv"}


class HarmBench(Benchmark):
    name = "harmbench"
    hub_id = "walledai/HarmBench"
    hub_config = "standard"
    fields = {
        "prompt": ("Behavior", "prompt"),
        "category": ("SemanticCategory", "category"),
        "context": ("ContextString", "context"),
        "id": ("BehaviorID",),
        "functional": ("FunctionalCategory",),
    }

    def __init__(self, split: str = "all", functional: Sequence[str] = ("standard", "contextual"), targets: str | None = None, **kw: Any) -> None:
        if split not in SPLITS:
            raise HarnessError(f"benchmark.split={split!r}: choose one of {choices(SPLITS)}")
        bad = [f for f in functional if f not in FUNCTIONAL]
        if bad:
            raise HarnessError(f"benchmark.functional: unknown {choices(bad)}; valid: {choices(FUNCTIONAL)}")
        super().__init__(**kw)
        self.file = f"harmbench/{SPLITS[split]}"
        self.functional = list(functional)
        self.targets_path = Path(targets) if targets else None
        if "copyright" not in self.functional:
            log.debug("harmbench: copyright behaviors left out (they need hash-based judging); add them with benchmark.functional=[standard,contextual,copyright]")

    def read_local(self, path: Path) -> pd.DataFrame:
        frame = super().read_local(path)
        targets = self.targets_path or path.parent / "harmbench_targets_text.json"
        self._targets = json.loads(targets.read_text()) if targets.is_file() else {}
        return frame

    def complete(self, values: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        values.setdefault("target", getattr(self, "_targets", {}).get(values["id"], ""))
        return values

    def parse(self, frame: pd.DataFrame, where: str):
        col = self.column_map(frame, where).get("functional")
        if col is not None:
            frame = frame[frame[col].isin(self.functional)]
        return super().parse(frame, where)
