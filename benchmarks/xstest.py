"""XSTest (Röttger et al. 2024): 250 safe prompts that look unsafe and 200 unsafe contrasts.

Answering the safe ones measures over-refusal; `labels` picks which to load.
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd

from harness.benchmark import Benchmark, BenchmarkSettings
from harness.errors import HarnessError, choices

LABELS = {"safe": "benign", "unsafe": "harmful"}


class XSTestSettings(BenchmarkSettings):
    labels: tuple[Literal["safe", "unsafe"], ...] = ("safe",)


class XSTest(Benchmark):
    name = "xstest"
    file = "xstest/xstest_prompts.csv"
    hub_id = "natolambert/xstest-v2-copy"
    hub_split = "prompts"
    fields = {"prompt": ("prompt",), "category": ("type",), "id": ("id",), "xs_label": ("label",)}
    required = ("prompt", "xs_label")

    Settings = XSTestSettings

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
