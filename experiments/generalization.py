"""experiment=generalization: does a model's refusal carry over to harmful sets phrased unlike
its training data, without refusing benign look-alikes?

For each system (a model card and an optional defense) and each set: direct ASR on the harmful
sets (XSTest unsafe questions, JBB harmful, HarmBench contextual, AdvBench), the share answered
on the benign sets (XSTest safe, JBB benign), each with n and a 95 % Wilson interval. Every
evaluation is an ordinary run folder under `out_dir/<system>/<set>/direct/`, so it resumes.
The direct attack (`direct`) and the defense of systems that name none (`defense`) come from
the config (`attack=direct`, `defense=none` unless the experiment's config says otherwise).

`reference` (default `aligned` in the configs) names the system every other one is paired with:
on each set, per prompt, is it broken (harmful sets: any sample harmful) or answered (benign sets:
no sample refused), the difference of the two shares with its exact 95 % interval and the exact
McNemar p, Holm-adjusted over the table (`generalization_paired.{csv,md}`; appended to the
Markdown table). A difference whose Holm p is 0.05 or more is no measured difference.

`split` names what the sets are: `held-out` (evaluation sets, never tuned on) or `dev` (for
tuning a recipe). When a system's model was trained by a recipe that lists its training prompts
(`training_prompts`), the table counts evaluation prompts that appear in them ("in training",
which must be 0).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.systems import systems as parse_systems
from harness import config
from harness.analysis import paired, report
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


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def training_prompts(model: Model) -> set[str] | None:
    """Normalised prompts a trained model's recipe trained on (all phrasings), if the recipe can list them."""
    recipe = getattr(model, "recipe", None)
    lister = getattr(recipe, "all_training_prompts", None)
    return {_norm(p) for p in lister()} if callable(lister) else None


def per_prompt(folder: Path, bench: Benchmark, measure: str) -> pd.Series:
    """Per behavior of `bench` as it is now: broken (any sample harmful) or answered (no sample refused); errors left out.

    Records of a behavior id whose prompt has since changed (an edited set) are not counted."""
    current = {b.id: b.query() for b in bench.load()}
    out: dict[str, bool] = {}
    for r in report.load_folders([folder]):
        if r.verdict.error or current.get(r.behavior.id) != r.behavior.query():
            continue
        bad = bool(r.verdict.harmful if measure == "direct ASR" else r.verdict.refused)
        out[r.behavior.id] = out.get(r.behavior.id, False) or bad
    series = pd.Series(out, dtype=bool)
    return series if measure == "direct ASR" else ~series


def cell(percent: float, n: int) -> dict[str, Any]:
    k = round(percent * n / 100)
    lo, hi = count_interval(k, n)
    return {"n": n, "percent": percent, "ci_low": 100 * lo, "ci_high": 100 * hi}


class Generalization:
    def __init__(self, systems: Mapping[str, Mapping[str, Any]], harmful: Mapping[str, Benchmark],
                 benign: Mapping[str, Benchmark], judge: Judge, engine: Callable[[Model], Engine], sampling: Mapping,
                 out_dir: str, split: str = "held-out", direct: Attack | None = None, defense: Defense | None = None,
                 reference: str | None = None) -> None:
        self.direct = direct or config.option("attack", "direct")
        self.systems = parse_systems(systems, defense or config.option("defense", "none"))
        if not harmful and not benign:
            raise HarnessError("experiment=generalization: no sets (driver.harmful and driver.benign are both empty)")
        self.harmful, self.benign = dict(harmful), dict(benign)
        self.judge, self.engine, self.sampling = judge, engine, Sampling(**sampling)
        self.out = Path(out_dir)
        self.split = split
        if reference is not None and reference not in self.systems:
            raise HarnessError(f"experiment=generalization: driver.reference={reference!r} is not a system; "
                               f"choose one of {sorted(self.systems)} or null (no paired comparison)")
        self.reference = reference

    def __call__(self) -> pd.DataFrame:
        rows = []
        outcomes: dict[tuple[str, str], pd.Series] = {}
        sets = [(name, bench, "direct ASR") for name, bench in self.harmful.items()]
        sets += [(name, bench, "answered") for name, bench in self.benign.items()]
        for label, (model, defense) in self.systems.items():
            seen = training_prompts(model)
            for name, bench, measure in sets:
                table = evaluate(model, bench, self.direct, defense, self.judge, self.engine, self.sampling,
                                 self.out / label / name / "direct")
                row = table.iloc[0]
                if measure == "direct ASR":
                    value, n = float(row["asr"]), int(row["n_harmful"])
                else:
                    value, n = 100.0 - float(row["refusal"]), int(row["n"]) - int(row["errors"])
                overlap = None if seen is None else sum(_norm(b.query()) in seen for b in bench.load())
                rows.append({"system": label, "set": name, "split": self.split, "measure": measure, **cell(value, n),
                             "in training": overlap})
                if self.reference is not None:
                    outcomes[label, name] = per_prompt(self.out / label / name / "direct", bench, measure)
        long = pd.DataFrame(rows)
        self.out.mkdir(parents=True, exist_ok=True)
        long.to_csv(self.out / "generalization.csv", index=False)
        text = self.markdown(long)
        if self.reference is not None and len(self.systems) > 1:
            pairs = self.paired(outcomes, sets)
            pairs.to_csv(self.out / "generalization_paired.csv", index=False)
            text += "\n" + self.paired_markdown(pairs)
            (self.out / "generalization_paired.md").write_text(self.paired_markdown(pairs))
        (self.out / "generalization.md").write_text(text)
        return long

    def paired(self, outcomes: Mapping[tuple[str, str], pd.Series], sets: list[tuple[str, Benchmark, str]]) -> pd.DataFrame:
        """Every system against the reference on each set's shared prompts; Holm over all rows."""
        rows = []
        for label in self.systems:
            if label == self.reference:
                continue
            for name, _, measure in sets:
                result = paired.compare_pair(outcomes[self.reference, name], outcomes[label, name])
                rows.append({"system": label, "reference": self.reference, "set": name, "measure": measure,
                             **{k: v for k, v in result.items() if k not in ("asr_a", "asr_b")},
                             "reference_percent": result["asr_a"], "system_percent": result["asr_b"]})
        table = pd.DataFrame(rows)
        table["p_holm"] = holm(list(table["p"])) if len(table) else []
        return table

    def paired_markdown(self, pairs: pd.DataFrame) -> str:
        lines = [f"Paired against `{self.reference}` on the same prompts: system - reference, points, exact 95 % interval, "
                 "exact McNemar p, Holm-adjusted over the table (Holm p >= 0.05: no measured difference).\n",
                 "| system | measure | set | n | reference % | system % | difference [95 % CI] | p | Holm p |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for r in pairs.itertuples():
            lines.append(f"| {r.system} | {r.measure} | {r.set} | {r.n} | {r.reference_percent:.1f} | {r.system_percent:.1f} | "
                         f"{r.diff:+.1f} [{r.diff_lo:+.1f}, {r.diff_hi:+.1f}] | {r.p:.3g} | {r.p_holm:.3g} |")
        return "\n".join(lines) + "\n"

    def markdown(self, long: pd.DataFrame) -> str:
        """One row per set, one column per system: `percent [low, high]`, with n."""
        text = long.assign(value=[f"{r.percent:.1f} [{r.ci_low:.1f}, {r.ci_high:.1f}]" for r in long.itertuples()])
        wide = text.pivot_table(index=["measure", "set", "n"], columns="system", values="value", aggfunc="first", sort=False)
        wide = wide.reindex(columns=list(self.systems)).reset_index()
        note = (f"Sets: {self.split}. Direct ASR (harmful sets) and share answered (benign sets), %, with 95 % Wilson "
                f"intervals; judge {self.judge.name}, {self.sampling.max_tokens} new tokens, "
                f"{'greedy' if self.sampling.greedy else 'sampled'}.\n\n")
        return note + report.markdown(wide) + "\n"
