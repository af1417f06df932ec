"""XSTest (Röttger et al. 2024): 250 safe prompts that look unsafe and 200 unsafe contrasts.

Answering the safe ones measures over-refusal; `labels` picks which to load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from harness.benchmark import Benchmark
from harness.errors import HarnessError, choices

LABELS = {"safe": "benign", "unsafe": "harmful"}


class XSTest(Benchmark):
    name = "xstest"
    file = "xstest/xstest_prompts.csv"
    hub_id = "natolambert/xstest-v2-copy"
    hub_split = "prompts"
    fields = {"prompt": ("prompt",), "category": ("type",), "id": ("id",), "xs_label": ("label",)}
    required = ("prompt", "xs_label")

    def __init__(self, labels: Sequence[str] = ("safe",), **kw: Any) -> None:
        bad = [x for x in labels if x not in LABELS]
        if bad:
            raise HarnessError(f"benchmark.labels: unknown {choices(bad)}; valid: {choices(LABELS)}")
        super().__init__(**kw)
        self.labels = list(labels)

    def parse(self, frame: pd.DataFrame, where: str):
        col = self.column_map(frame, where)["xs_label"]
        unknown = sorted(set(frame[col]) - set(LABELS))
        if unknown:
            raise HarnessError(f"benchmark 'xstest': {where} has labels {choices(unknown)}; expected {choices(LABELS)}")
        return super().parse(frame[frame[col].isin(self.labels)], where)

    def complete(self, values: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        values["label"] = LABELS[values["xs_label"]]
        values["id"] = f"xstest-{values['id']}"
        return values
