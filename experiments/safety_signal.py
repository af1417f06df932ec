"""experiment=safety_signal: ASR under a list of attacks (direct, prefill k = 5/10/20/40,
decoding, GCG, ...) for several systems side by side (aligned, deep-aligned, safety-signal
model with and without its decoding), plus how often each answers benign prompts
(over-refusal, XSTest safe) and its utility (GSM8K exact match).

A system is a model card and a defense. Every evaluation is an ordinary run folder under
`out_dir/<system>/<benchmark>/<attack>/`, so the experiment resumes like any run; a defense
that logs classifier decisions (safety_signal) writes them into that folder, and the table
gets the share of completions where the classifier steered ("steered <benchmark>") and, on the
harmful set, the share it flagged only after the first check, on generated tokens ("steered after the
first check"): whether the re-checks during generation act, or the head works as a prompt classifier. The benign
and utility sets are asked directly (`direct`, the config's `attack=direct`); a system without a
defense gets `defense` (`defense=none`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.systems import systems as parse_systems
from harness import config
from harness.analysis import report, tables
from harness.attack import Attack
from harness.benchmark import Benchmark
from harness.defense import Defense
from harness.engine.base import Engine
from harness.errors import HarnessError
from harness.judge.base import Judge
from harness.model.base import Model
from harness.run.loop import evaluate
from harness.types import Sampling

log = logging.getLogger(__name__)

SUMMARY = tables.METRIC_COLUMNS | {"judge"}
DECISIONS = "safety_signal_decisions.jsonl"


def asr_columns(label: str, table: pd.DataFrame) -> dict[str, float]:
    """One column per attack configuration; attacks with many (decoding) give their worst case."""
    params = [c for c in table.columns if c not in SUMMARY and c not in tables.SETUP]
    if "strategy" in table.columns and (table["strategy"] == tables.WORST).any():
        worst = table[table["strategy"] == tables.WORST]
        if "system_prompt" in worst.columns:
            worst = worst[worst["system_prompt"] == "any"]
        return {f"ASR {label} (worst case)": float(worst["asr"].iloc[0])}
    if not params or len(table) == 1:
        return {f"ASR {label}": float(table["asr"].iloc[0])}
    out = {}
    for row in table.to_dict("records"):
        values = ",".join(f"{p}={int(row[p]) if isinstance(row[p], float) and row[p].is_integer() else row[p]}"
                          for p in params if pd.notna(row[p]))
        out[f"ASR {label} {values}"] = float(row["asr"])
    return out


def steering_shares(folder: Path) -> dict[str, float] | None:
    """From the classifier's decisions log (None: no log): the percentage of completions where it inserted a
    refusal ("steered"), and of those flagged only after the first check ("later"), i.e. on generated tokens
    rather than on the prompt and prefill alone: the part a prompt classifier could not have done."""
    path = folder / DECISIONS
    if not path.is_file():
        return None
    latest = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        latest[(entry["request"], entry["sample"])] = entry.get("action")
    if not latest:
        return None
    actions = [a for a in latest.values() if a is not None]
    later = [a for a in actions if a.get("detected_at", 0) > 0]
    return {"steered": 100.0 * len(actions) / len(latest), "later": 100.0 * len(later) / len(latest)}


class SafetySignalExperiment:
    def __init__(self, systems: Mapping[str, Mapping[str, Any]], harmful: Benchmark, attacks: Mapping[str, Attack],
                 judge: Judge, engine: Callable[[Model], Engine], sampling: Mapping, out_dir: str,
                 benign: Mapping[str, Benchmark] | None = None, utility: Benchmark | None = None,
                 utility_judge: Judge | None = None, utility_sampling: Mapping | None = None, direct: Attack | None = None,
                 defense: Defense | None = None) -> None:
        self.direct = direct or config.option("attack", "direct")
        self.systems = parse_systems(systems, defense or config.option("defense", "none"))
        if not attacks:
            raise HarnessError("experiment: driver.attacks is empty; give at least one attack (e.g. direct)")
        if utility is not None and utility_judge is None:
            raise HarnessError("experiment: driver.utility needs driver.utility_judge (e.g. exact_match for gsm8k)")
        self.harmful = harmful
        self.attacks = dict(attacks)
        self.judge = judge
        self.engine = engine
        self.sampling = Sampling(**sampling)
        self.out = Path(out_dir)
        self.benign = dict(benign or {})
        self.utility = utility
        self.utility_judge = utility_judge
        self.utility_sampling = Sampling(**(utility_sampling or sampling))

    def cell(self, label: str, bench: Benchmark, attack: Attack, judge: Judge, sampling: Sampling,
             folder_name: str) -> tuple[pd.DataFrame, dict[str, float] | None]:
        """One system on one benchmark under one attack: its ASR table and the share the classifier steered."""
        model, defense = self.systems[label]
        folder = self.out / label / bench.name / folder_name
        if hasattr(defense, "decisions_log"):  # classifier decisions land next to the records
            defense.decisions_log = str(folder / DECISIONS)
        table = evaluate(model, bench, attack, defense, judge, self.engine, sampling, folder)
        return table, steering_shares(folder)

    def __call__(self) -> pd.DataFrame:
        rows = []
        for label in self.systems:
            row: dict[str, Any] = {"system": label}
            for name, attack in self.attacks.items():
                table, steered = self.cell(label, self.harmful, attack, self.judge, self.sampling, name)
                row.update(asr_columns(name, table))
                if steered is not None:
                    row[f"steered {self.harmful.name} {name} (%)"] = steered["steered"]
                    row[f"steered after the first check {self.harmful.name} {name} (%)"] = steered["later"]
            for name, bench in self.benign.items():
                table, steered = self.cell(label, bench, self.direct, self.judge, self.sampling, "direct")
                row[f"answered {name} (%)"] = 100.0 - float(table["refusal"].iloc[0])
                if steered is not None:
                    row[f"steered {name} (%)"] = steered["steered"]
            if self.utility is not None:
                table, steered = self.cell(label, self.utility, self.direct, self.utility_judge, self.utility_sampling,
                                           "direct")
                row[f"{self.utility.name} accuracy (%)"] = 100.0 * float(table["mean_score"].iloc[0])
                if steered is not None:
                    row[f"steered {self.utility.name} (%)"] = steered["steered"]
            rows.append(row)
        table = pd.DataFrame(rows)
        self.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(self.out / "safety_signal.csv", index=False)
        (self.out / "safety_signal.md").write_text(report.markdown(table) + "\n")
        self.plot(table)
        return table

    def plot(self, table: pd.DataFrame) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        columns = [c for c in table.columns if c.startswith("ASR ")]
        if not columns:
            return
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(columns) + 2), 4))
        width = 0.8 / len(table)
        for i, row in enumerate(table.to_dict("records")):
            bars = ax.bar([j + i * width for j in range(len(columns))], [row.get(c, float("nan")) for c in columns], width,
                          label=row["system"])
            ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)  # a 0 % bar is invisible without its label
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(columns))])
        ax.set_xticklabels([c.removeprefix("ASR ") for c in columns], rotation=30, ha="right")
        ax.set_ylabel("attack success rate (%)")
        ax.set_ylim(0, 110)
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
        ax.set_title(f"ASR on {self.harmful.name}")
        fig.tight_layout()
        fig.savefig(self.out / "safety_signal.png", dpi=120)
        plt.close(fig)

