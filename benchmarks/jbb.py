"""JailbreakBench behaviors (Chao et al. 2024): 100 harmful and 100 benign twins, 10 categories."""

from __future__ import annotations

from typing import Any

from harness.benchmark import Benchmark
from harness.errors import HarnessError, choices

FILES = {"harmful": "jbb/behaviors.csv", "benign": "jbb/benign-behaviors.thirdparty.csv"}


class JailbreakBench(Benchmark):
    name = "jbb"
    hub_id = "JailbreakBench/JBB-Behaviors"
    hub_config = "behaviors"
    fields = {"prompt": ("Goal", "prompt"), "target": ("Target",), "category": ("Category",), "id": ("Index", "Unnamed: 0")}

    def __init__(self, split: str = "harmful", **kw: Any) -> None:
        if split not in FILES:
            raise HarnessError(f"benchmark.split={split!r}: choose one of {choices(FILES)}")
        super().__init__(**kw)
        self.split = split
        self.file = FILES[split]
        self.hub_split = split
        self.label = split

    def complete(self, values: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        if "id" in values:
            values["id"] = f"jbb-{self.split}-{values['id']}"
        return values
