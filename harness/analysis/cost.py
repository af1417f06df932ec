"""Attack cost, defense blocks and the adaptive flag in the ASR tables, and ASR against query budget.

Columns (means per behavior over a table row; a column nobody filled is left out):
- `queries`: target generations the attack's search made (PAIR; the evaluation is one more);
  `attacker_queries`: calls to an attacker model; `forward` / `backward`: white-box passes (GCG);
  `tokens`: tokens the search generated or scored (PAIR, TAP: attacker, evaluator and target; crescendo: the
  conversation's so far); `seconds`: the search's wall time;
- `blocked`: % of outputs an inference-time defense replaced with its refusal (filters, SmoothLLM's vote);
- `adaptive`: whether the attack optimized against the defended pipeline ("yes"), ignored it ("no"),
  or the row mixes both. A defense's ASR from non-adaptive attacks only is an upper bound on its strength.

`asr_vs_queries.png`: the share of behaviors broken within a budget of b target queries (or forward
passes for white-box attacks), a line per setup: a search that stopped early at b queries counts
from b on.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.types import Record

COST = ("queries", "attacker_queries", "forward", "backward", "tokens", "seconds")


def cost_fields(record: Record) -> dict[str, Any]:
    """Per-record columns for the frame."""
    c = record.completion
    cost = c.request.cost
    values = {k: (getattr(cost, k) or float("nan")) if cost is not None else float("nan") for k in COST}
    return {**values, "blocked": bool(c.blocked), "wrapped": "+" in c.engine, "adaptive": c.request.adaptive}


def cost_summary(group: pd.DataFrame) -> dict[str, Any]:
    """Per-row table columns (see the module docstring); NaN where nothing applies (the table drops empty columns)."""
    nan = float("nan")
    out: dict[str, Any] = {"blocked": nan, "adaptive": nan, **dict.fromkeys(COST, nan)}
    if "wrapped" not in group:
        return out
    if group["wrapped"].any():  # an inference-time defense wrapped the engine
        out["blocked"] = 100.0 * group["blocked"].astype(bool).mean()
    flags = group["adaptive"].dropna().astype(bool)
    if len(flags):
        out["adaptive"] = "yes" if flags.all() else "no" if not flags.any() else "mixed"
    for k in COST:
        if group[k].notna().any():
            out[k] = group[k].astype(float).mean()
    return out


def budget_curves(frame: pd.DataFrame) -> tuple[str, list[tuple[str, list[float], list[float]]]]:
    """(x label, lines) for ASR against the query budget; no lines when no record carries a cost."""
    if "queries" not in frame:
        return "", []
    rows = frame[frame["label"] == "harmful"]
    if "param.turn" in rows:  # a conversation's turns are several records of one behavior: turns_to_break shows it
        rows = rows[rows["param.turn"].isna()]
    x = "queries" if rows["queries"].notna().any() else "forward"
    rows = rows[rows[x].notna() & ~rows["error"]]
    lines = []
    for setup, part in rows.groupby(["model", "defense", "attack", "benchmark"]):
        budgets = sorted(set(part[x].astype(float)))
        broken = part["harmful"].eq(True)
        asr = [100.0 * (broken & (part[x] <= b)).sum() / len(part) for b in budgets]
        lines.append((" / ".join(setup[:3]), [0.0, *budgets], [0.0, *asr]))
    return x, lines
