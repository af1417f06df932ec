"""HarmBench text behaviors (Mazeika et al. 2024): standard, contextual and copyright.

Copyright behaviors are judged by hashing against the copyrighted text, which keyword and
LLM judges cannot do, so they are left out by default (`functional` adds them back).
Affirmative targets come from HarmBench's optimizer targets file beside the CSV, if present.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from harness.benchmark import Benchmark, BenchmarkSettings

log = logging.getLogger(__name__)

FUNCTIONAL = ("standard", "contextual", "copyright")
SPLITS = {"all": "harmbench_behaviors_text_all.csv", "test": "harmbench_behaviors_text_test.csv", "val": "harmbench_behaviors_text_val.csv"}


class HarmBenchSettings(BenchmarkSettings):
    split: Literal["all", "test", "val"] = "all"
    functional: tuple[Literal["standard", "contextual", "copyright"], ...] = ("standard", "contextual")
    targets: Path | None = None  # HarmBench's optimizer targets file (default: beside the CSV)


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

    Settings = HarmBenchSettings

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        self.file = f"harmbench/{SPLITS[self.split]}"
        self.targets_path = self.targets
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
