"""Shared bench plumbing: where results go, the machine they ran on, writing JSON + Markdown."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "bench"
DATA = Path(os.environ.get("HARNESS_DATA_DIR", ROOT.parent / "shared" / "data"))


def safety_sft_examples(model_name: str, count: int) -> tuple[Any, list[Any]]:
    """The model card `model_name` and the first `count` of the default safety-SFT mix (HarmBench refusals +
    AlpacaEval answers), shuffled with seed 0: the training benches' shared data."""
    import random

    from harness import config
    from harness.config import instantiate

    cfg = config.compose([f"model={model_name}", "defense=safety_sft", f"data_dir={DATA}"])
    model = instantiate(cfg.model)
    recipe = instantiate(cfg.defense)
    examples = recipe.refusal_examples() + recipe.utility_examples(model)
    random.Random(0).shuffle(examples)
    return model, examples[:count]


def machine() -> dict[str, Any]:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(), "processor": platform.processor() or platform.machine()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write(name: str, rows: list[dict[str, Any]], summary: dict[str, Any], notes: str = "", out: Path | None = None) -> Path:
    """results/bench/<name>.{json,md} (or under `out`); the path of the Markdown file."""
    out = OUT if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"bench": name, "machine": machine(), "summary": summary, "rows": rows}
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    frame = pd.DataFrame(rows)
    frame = frame.astype(object).where(frame.notna(), None)  # missing values print as "-", not "nan"
    md = [f"# {name}", "", notes, "", frame.to_markdown(index=False, floatfmt=".2f", missingval="-"), "",
          "```json", json.dumps({"machine": payload["machine"], "summary": summary}, indent=2), "```", ""]
    (out / f"{name}.md").write_text("\n".join(md))
    return out / f"{name}.md"
