"""JailbreakBench behaviors (Chao et al. 2024): 100 harmful and 100 benign twins, 10 categories."""

from __future__ import annotations

from typing import Any, Literal

from harness.benchmark import Benchmark, BenchmarkSettings

FILES = {"harmful": "jbb/behaviors.csv", "benign": "jbb/benign-behaviors.thirdparty.csv"}


class JBBSettings(BenchmarkSettings):
    split: Literal["harmful", "benign"] = "harmful"


class JailbreakBench(Benchmark):
    name = "jbb"
    hub_id = "JailbreakBench/JBB-Behaviors"
    hub_config = "behaviors"
    fields = {"prompt": ("Goal", "prompt"), "target": ("Target",), "category": ("Category",), "id": ("Index", "Unnamed: 0")}

    Settings = JBBSettings

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        self.file = FILES[self.split]
        self.hub_split = self.split
        self.label = self.split

    def complete(self, values: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        if "id" in values:
            values["id"] = f"jbb-{self.split}-{values['id']}"
        return values
