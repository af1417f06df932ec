"""HEx-PHI (Qi et al. 2024): 330 harmful instructions, 11 categories x 30.

License-gated: the harness never ships it. Accept the terms at
https://huggingface.co/datasets/LLM-Tuning-Safety/HEx-PHI and point `benchmark.path` at your
copy: either the dataset's folder (`category_1.csv` ... `category_11.csv`, one instruction per
line, no header) or one CSV/JSONL file with columns `instruction` (or `prompt`), optional
`category`, and optional `harmful_prefix` (or `response`): a harmful answer whose first
tokens the prefill attack uses, as in "Harmful HEx-PHI".
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from harness.benchmark import Benchmark, read_table
from harness.errors import DataError

CATEGORIES = {
    1: "Illegal Activity",
    2: "Child Abuse Content",
    3: "Hate/Harass/Violence",
    4: "Malware",
    5: "Physical Harm",
    6: "Economic Harm",
    7: "Fraud/Deception",
    8: "Adult Content",
    9: "Political Campaigning",
    10: "Privacy Violation Activity",
    11: "Tailored Financial Advice",
}


class HExPHI(Benchmark):
    name = "hexphi"
    file = "hexphi"
    hub_id = "LLM-Tuning-Safety/HEx-PHI"  # gated: needs an accepted license and a token
    reads_folders = True
    fields = {
        "prompt": ("instruction", "prompt"),
        "category": ("category",),
        "id": ("id",),
        "harmful_prefix": ("harmful_prefix", "response"),
    }

    def read_local(self, path: Path) -> pd.DataFrame:
        if path.is_file():
            return read_table(path)
        files = sorted(path.glob("category_*.csv"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
        if not files:
            raise DataError(f"benchmark 'hexphi': {path} holds no category_<N>.csv files (HEx-PHI's layout)")
        frames = []
        for f in files:
            number = int(re.sub(r"\D", "", f.stem))
            lines = pd.read_csv(f, header=None, dtype=str, keep_default_na=False, encoding="utf-8-sig").iloc[:, 0]
            frames.append(pd.DataFrame({
                "instruction": lines,
                "category": CATEGORIES.get(number, f"category_{number}"),
                "id": [f"hexphi-{number}-{i}" for i in range(len(lines))],
            }))
        return pd.concat(frames, ignore_index=True)
