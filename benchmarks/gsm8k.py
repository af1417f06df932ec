"""GSM8K grade-school math (Cobbe et al. 2021): a utility benchmark; reference = the final number
(or, with `solution=true`, the worked solution ending in '#### N', for fine-tuning data)."""

from __future__ import annotations

import re
from typing import Any, Literal

from harness.benchmark import Benchmark, BenchmarkSettings

SPLITS = {"test": "utility/gsm8k_test.jsonl", "train": "utility/gsm8k_train.jsonl"}


CALCULATOR = re.compile(r"<<[^>]*>>")  # GSM8K's calculator annotations, e.g. <<48/2=24>>


def final_number(answer: str) -> str:
    """GSM8K answers end with '#### N'."""
    return answer.rsplit("####", 1)[-1].strip().replace(",", "") if "####" in answer else ""


class GSM8KSettings(BenchmarkSettings):
    split: Literal["test", "train"] = "test"
    solution: bool = False  # the reference is the worked solution (for fine-tuning), not the final number


class GSM8K(Benchmark):
    name = "gsm8k"
    hub_id = "openai/gsm8k"
    hub_config = "main"
    label = "benign"
    fields = {"prompt": ("question",), "reference": ("answer",)}
    required = ("prompt", "reference")

    Settings = GSM8KSettings

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        self.file = SPLITS[self.split]
        self.hub_split = self.split

    def complete(self, values: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        text = values["reference"]
        values["reference"] = CALCULATOR.sub("", text).strip() if self.solution else final_number(text)
        values["id"] = f"gsm8k-{self.split}-{values['id'].rsplit('-', 1)[-1]}"
        return values
