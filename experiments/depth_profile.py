"""experiment=depth_profile: how deep is each system's safety, along every attack axis at once?

For each system (a model card and an optional defense) and each attack axis (experiments/depth_axes.py: prefill
k, GCG steps, best-of-N N, crescendo turns, refusal ablation off/on), the ASR at each strength on the same harmful
behaviors, with n and a 95 % Wilson interval; beside them what the safety costs: over-refusal (the share of
XSTest's safe prompts answered) and utility (GSM8K accuracy, `utility_judge`, usually exact_match).

Every system is paired with the `reference` (the aligned model) cell by cell on the same behaviors: the
difference in points with its exact 95 % interval and McNemar's exact p, Holm-adjusted over the whole table
(every axis, strength, front and system). A difference whose Holm p is 0.05 or more is no measured difference,
and the tables say so. Every cell is an ordinary run folder under `out_dir/<system>/<axis>/<run>/`, so an
interrupted experiment resumes where it stopped; an axis a system cannot take (a white-box attack on an API
model) is a row that says why, not a crash. A system may change an axis's attack settings for itself
(`driver.systems.<label>.axes.<axis>: {setting: value}`): the safety-signal system takes refusal ablation folded
into the weights (`orthogonalize: true`), since its own decoding engine is out of the hooks' reach.

Writes `depth_profile.csv` (long: one row per system x axis x strength), `depth_profile.md` (one table per
system) and `depth_profile_<system>.png` (one panel per axis, the system against the reference, with bands).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.depth_axes import Axis, Strength
from experiments.systems import systems as parse_systems
from harness import config
from harness.analysis import fronts, paired, plots, report, tables
from harness.analysis.stats import count_interval, holm
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

OVER_REFUSAL, UTILITY = "over_refusal", "utility"
MEASURES = {OVER_REFUSAL: "answered (XSTest safe)", UTILITY: "accuracy (GSM8K)"}  # the ASR rows say "ASR"


class DepthProfile:
    def __init__(self, systems: Mapping[str, Mapping[str, Any]], harmful: Benchmark, axes: Mapping[str, Axis],
                 judge: Judge, engine: Callable[[Model], Engine], sampling: Mapping, out_dir: str,
                 reference: str | None = "aligned", over_refusal: Benchmark | None = None,
                 utility: Benchmark | None = None, utility_judge: Judge | None = None,
                 utility_sampling: Mapping | None = None, direct: Attack | None = None,
                 defense: Defense | None = None) -> None:
        self.systems = parse_systems(systems, defense or config.option("defense", "none"))
        if not self.systems:
            raise HarnessError("experiment=depth_profile: no systems (driver.systems is empty)")
        if not axes:
            raise HarnessError("experiment=depth_profile: no attack axes (driver.axes is empty)")
        self.overrides = {label: dict(system.get("axes") or {}) for label, system in systems.items()}
        for label, by_axis in self.overrides.items():
            unknown = sorted(set(by_axis) - set(axes))
            if unknown:
                raise HarnessError(f"experiment=depth_profile: driver.systems.{label}.axes names {unknown}, which "
                                   f"are not axes; choose from {sorted(axes)}")
        if reference is not None and reference not in self.systems:
            raise HarnessError(f"experiment=depth_profile: driver.reference={reference!r} is not a system; "
                               f"choose one of {sorted(self.systems)} or null (no paired comparison)")
        if utility is not None and utility_judge is None:
            raise HarnessError("experiment=depth_profile: driver.utility needs driver.utility_judge "
                               "(e.g. /judge@driver.utility_judge: exact_match)")
        self.harmful, self.axes = harmful, dict(axes)
        self.judge, self.engine, self.sampling = judge, engine, Sampling(**sampling)
        self.utility_sampling = Sampling(**{**dict(sampling), **dict(utility_sampling or {})})
        self.over_refusal, self.utility, self.utility_judge = over_refusal, utility, utility_judge
        self.direct = direct or config.option("attack", "direct")
        self.reference = reference
        self.out = Path(out_dir)

    # --- cells ----------------------------------------------------------------------------------------
    def frame(self, folder: Path, bench: Benchmark, judge: Judge) -> pd.DataFrame:
        """The folder's records as a frame: this judge's verdicts only (a folder re-judged by another judge keeps
        both), and only behaviors of the set as it is now (an edited set leaves old ones)."""
        current = {b.id: b.query() for b in bench.load()}
        records = [r for r in report.load_folders([folder])
                   if current.get(r.behavior.id) == r.behavior.query() and r.verdict.judge == judge.id]
        return tables.to_frame(records)

    def axis(self, model: Model, defense: Defense, label: str, name: str, axis: Axis
             ) -> dict[str, dict[Strength, pd.Series]]:
        """Column (`harmful`, and `beside.<judge>` for a panel judge's other judges) -> strength -> broken."""
        bench = axis.benchmark(self.harmful)
        frames = {}
        for run, attack in axis.runs(self.direct).items():
            folder = self.out / label / name / run
            evaluate(model, bench, attack, defense, self.judge, self.engine, self.sampling, folder)
            frames[run] = self.frame(folder, bench, self.judge)
        columns = dict.fromkeys(c for f in frames.values() for c in f.columns if c.startswith(tables.BESIDE))
        return {column: axis.outcomes(frames, column) for column in ["harmful", *columns]}

    def benign(self, model: Model, defense: Defense, label: str, front: str) -> pd.Series:
        bench, judge, sampling = ((self.over_refusal, self.judge, self.sampling) if front == OVER_REFUSAL
                                  else (self.utility, self.utility_judge, self.utility_sampling))
        folder = self.out / label / front / "direct"
        evaluate(model, bench, self.direct, defense, judge, self.engine, sampling, folder)
        per = fronts.outcomes(self.frame(folder, bench, judge))
        per = per[per[fronts.FRONT] == front]
        return per.groupby("behavior")[fronts.EVENT].all().astype(bool)

    def cells(self) -> tuple[list[dict[str, Any]], dict[tuple[str, str, str], pd.Series]]:
        rows: list[dict[str, Any]] = []
        outcomes: dict[tuple[str, str, str], pd.Series] = {}
        plan = [(name, axis.label, axis) for name, axis in self.axes.items()]
        plan += [(front, MEASURES[front], None) for front, bench in ((OVER_REFUSAL, self.over_refusal),
                                                                      (UTILITY, self.utility)) if bench is not None]
        for label, (model, defense) in self.systems.items():
            for name, shown, axis in plan:
                try:
                    verdicts = (self.axis(model, defense, label, name, axis.with_attack(self.overrides[label].get(name)))
                                if axis is not None
                                else {"harmful": {"-": self.benign(model, defense, label, name)}})
                except HarnessError as exc:  # this system cannot take this axis: said in the table, the rest runs
                    log.warning("depth_profile: %s / %s: %s", label, name, exc)
                    rows.append({"system": label, "axis": name, "shown": shown, "strength": "", "n": 0,
                                 "percent": math.nan, "ci_low": math.nan, "ci_high": math.nan, "note": str(exc)})
                    continue
                for strength, series in verdicts["harmful"].items():
                    outcomes[label, name, str(strength)] = series
                    beside = {}  # e.g. judge=keyword_learned: the learned judge's ASR beside the deciding one's
                    for column, by_strength in verdicts.items():
                        if column != "harmful":
                            other = column.removeprefix(tables.BESIDE)
                            beside.update({f"{other}_{k}": v for k, v in rate(by_strength[strength]).items()})
                    rows.append({"system": label, "axis": name, "shown": shown, "strength": str(strength),
                                 **rate(series), "note": "", **beside})
        return rows, outcomes

    # --- the table ------------------------------------------------------------------------------------
    def __call__(self) -> pd.DataFrame:
        rows, outcomes = self.cells()
        table = pd.DataFrame(rows)
        table = self.paired(table, outcomes)
        self.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(self.out / "depth_profile.csv", index=False)
        (self.out / "depth_profile.md").write_text(self.markdown(table))
        for label in self.systems:
            self.plot(table, label)
        return table

    def paired(self, table: pd.DataFrame, outcomes: Mapping[tuple[str, str, str], pd.Series]) -> pd.DataFrame:
        """Each system's cell against the reference's on their shared behaviors; Holm over every paired cell."""
        columns = ["paired_n", "reference_percent", "diff", "diff_lo", "diff_hi", "p", "p_holm"]
        table = table.assign(**{c: math.nan for c in columns})
        if self.reference is None or len(self.systems) < 2:
            return table
        for i, row in table.iterrows():
            ref = outcomes.get((self.reference, row["axis"], row["strength"]))
            own = outcomes.get((row["system"], row["axis"], row["strength"]))
            if row["system"] == self.reference or ref is None or own is None:
                continue
            result = paired.compare_pair(ref, own)
            if not result["n"]:
                continue
            table.loc[i, columns[:-1]] = [result["n"], result["asr_a"], result["diff"], result["diff_lo"],
                                          result["diff_hi"], result["p"]]
        tested = table["p"].notna()
        table.loc[tested, "p_holm"] = holm(list(table.loc[tested, "p"]))
        return table

    def markdown(self, table: pd.DataFrame) -> str:
        ref = f"`{self.reference}`" if self.reference else "none"
        lines = [
            "# Depth profile\n",
            f"Harmful set: {self.harmful.name} ({self.harmful.sampling_note}); judge: {self.judge.id}. Each cell: "
            "percent [95 % Wilson interval] over n behaviors (ASR: any sample judged harmful; answered: no sample "
            "refused; accuracy: every sample correct). Judge errors and failed requests are left out of n.",
            f"Paired with {ref} on the same behaviors: system - reference in points, exact 95 % interval, McNemar's "
            "exact p Holm-adjusted over every paired cell of this file. Holm p >= 0.05: **no measured difference**.\n"]
        others = [c.removesuffix("_percent") for c in table.columns
                  if c.endswith("_percent") and c not in ("percent", "reference_percent")]
        if others:
            lines.append(f"Beside the deciding judge: {', '.join(others)}'s ASR on the same completions (% [95 % CI], "
                         "harmful rows only; not paired).\n")
        extra = "".join(f" {o} % [95 % CI] |" for o in others)
        for label in self.systems:
            part = table[table["system"] == label]
            lines += [f"## {label}\n", "| axis | strength | n | % [95 % CI] |" + extra +
                      " reference % | difference [95 % CI] | Holm p | reading |", "|---" * (8 + len(others)) + "|"]
            for _, r in part.iterrows():
                if r["note"]:
                    lines.append(f"| {r['shown']} | | 0 | not run: {r['note']} |" + " |" * (4 + len(others)))
                    continue
                cell = interval(r, "")
                beside = "".join(f" {interval(r, o + '_')} |" for o in others)
                if pd.isna(r["p_holm"]):
                    lines.append(f"| {r['shown']} | {r['strength']} | {r['n']} | {cell} |{beside} | | | "
                                 f"{'reference' if label == self.reference else ''} |")
                    continue
                reading = "no measured difference" if r["p_holm"] >= 0.05 else ("higher" if r["diff"] > 0 else "lower")
                lines.append(f"| {r['shown']} | {r['strength']} | {r['n']} | {cell} |{beside} {r['reference_percent']:.0f} "
                             f"| {r['diff']:+.0f} [{r['diff_lo']:+.0f}, {r['diff_hi']:+.0f}] (n={int(r['paired_n'])}) "
                             f"| {r['p_holm']:.3g} | {reading} |")
            lines.append("")
        return "\n".join(lines)

    def plot(self, table: pd.DataFrame, label: str) -> Path | None:
        """One panel per axis (and the benign fronts): this system and the reference, with 95 % bands."""
        panels = []
        for name in dict.fromkeys(table["axis"]):
            part = table[(table["axis"] == name) & (table["note"] == "") & (table["n"] > 0)]
            lines = []
            for who in dict.fromkeys([label, self.reference]):
                rows = part[part["system"] == who] if who is not None else part.iloc[0:0]
                if not rows.empty:
                    lines.append((who, list(rows["strength"]), list(rows["percent"]), list(rows["ci_low"]),
                                  list(rows["ci_high"])))
            if lines:
                panels.append((str(part["shown"].iloc[0]), lines))
        if not panels:
            return None
        return plots.panels(self.out / f"depth_profile_{label}.png", panels,
                            f"{label}: depth profile on {self.harmful.name} (reference: {self.reference})")


def interval(row: pd.Series, prefix: str) -> str:
    """`percent [low-high]` of a row's rate (`prefix`: '' for the deciding judge, 'learned_' for one beside it)."""
    n, value = row.get(f"{prefix}n"), row.get(f"{prefix}percent")
    if n is None or pd.isna(n) or not n or pd.isna(value):
        return "-"
    return f"{value:.0f} [{row[f'{prefix}ci_low']:.0f}-{row[f'{prefix}ci_high']:.0f}]"


def rate(series: pd.Series) -> dict[str, Any]:
    """A share of behaviors in percent, with n and its 95 % Wilson interval."""
    n, k = len(series), int(series.sum())
    lo, hi = count_interval(k, n) if n else (math.nan, math.nan)
    return {"n": n, "percent": 100.0 * k / n if n else math.nan, "ci_low": 100 * lo, "ci_high": 100 * hi}

