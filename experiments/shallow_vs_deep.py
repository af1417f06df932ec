"""experiment=shallow_vs_deep: prefill ASR at several k for base, aligned and deep-aligned
models side by side, plus how often each answers benign prompts (over-refusal), and the
per-token KL of each aligned model against the base.

Builds whatever model is missing (training is cached), and every evaluation is an ordinary
run folder under `out_dir/<model>/...`, so it resumes like any run. The attacks come from the
config: `prefill` is a factory (the `attack=prefill` option with `_partial_: true`) called with
this experiment's lengths, `direct` asks the benign sets, `defense` (`defense=none`) wraps every model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from harness import config
from harness.analysis import kl, plots, report
from harness.attack import Attack
from harness.benchmark import Benchmark
from harness.defense import Defense
from harness.engine.base import Engine
from harness.judge.base import Judge
from harness.model.base import Model
from harness.run.loop import evaluate
from harness.training.answers import sample_answers
from harness.types import Sampling

log = logging.getLogger(__name__)


class ShallowVsDeep:
    def __init__(self, models: Mapping[str, Model], harmful: Benchmark, benign: Mapping[str, Benchmark], judge: Judge,
                 engine: Callable[[Model], Engine], sampling: Mapping, out_dir: str, lengths: Sequence[int] = (0, 5, 10, 20, 40),
                 reference: str = "base", kl_pairs: int = 30, kl_positions: int = 20, answers_from: Model | None = None,
                 prefill: Callable[..., Attack] | None = None, direct: Attack | None = None,
                 defense: Defense | None = None) -> None:
        self.models = dict(models)
        self.harmful = harmful
        self.benign = dict(benign)
        self.judge = judge
        self.engine = engine
        self.sampling = Sampling(**sampling)
        self.out = Path(out_dir)
        self.lengths = list(lengths)
        self.reference = reference
        self.kl_pairs = kl_pairs
        self.kl_positions = kl_positions
        self.answers_from = answers_from
        self.prefill: Callable[..., Attack] = prefill or config.option("attack", "prefill", _partial_=True)
        self.direct = direct or config.option("attack", "direct")
        self.defense = defense or config.option("defense", "none")

    def prefill_attack(self) -> Attack:
        """Prefill the benchmark's targets, or (`answers_from`) that model's own harmful answers, which reach k = 40."""
        if self.answers_from is None:
            return self.prefill(lengths=self.lengths)
        return self.prefill(lengths=self.lengths, source="answers", answers_from=self.answers_from,
                            answer_tokens=max(64, *self.lengths), name="prefill_answers")

    def cell(self, model: Model, bench: Benchmark, attack: Attack) -> pd.DataFrame:
        return evaluate(model, bench, attack, self.defense, self.judge, self.engine, self.sampling,
                        self.out / model.name / bench.name / attack.name)

    def __call__(self) -> pd.DataFrame:
        rows = []
        for label, model in self.models.items():
            row: dict = {"model": label}
            prefill = self.cell(model, self.harmful, self.prefill_attack())
            for r in prefill.itertuples():  # each with its 95 % interval (markdown shows "ASR k=5 95% CI")
                row.update({f"ASR k={int(r.k)}": r.asr, f"ASR k={int(r.k)}_lo": r.asr_lo, f"ASR k={int(r.k)}_hi": r.asr_hi})
                row[f"prefill tokens k={int(r.k)}"] = r.prefill_tokens  # the mean actually prefilled (targets are short)
            for name, bench in self.benign.items():
                table = self.cell(model, bench, self.direct)
                first = table.iloc[0]
                row.update({f"answered {name}": 100.0 - float(first["refusal"]),
                            f"answered {name}_lo": 100.0 - float(first["refusal_hi"]),
                            f"answered {name}_hi": 100.0 - float(first["refusal_lo"])})
            rows.append(row)
        kl_rows = self.kl_analysis()
        side = pd.DataFrame(rows)
        if kl_rows:
            side = side.merge(pd.DataFrame(kl_rows), on="model", how="left")
        self.out.mkdir(parents=True, exist_ok=True)
        side.to_csv(self.out / f"{self.stem}.csv", index=False)
        (self.out / f"{self.stem}.md").write_text(f"Prefix source: {self.prefix_source}.\n\n" + report.markdown(side) + "\n")
        self.plot(side)
        return side

    @property
    def stem(self) -> str:
        """Output file name: one per prefix source, so an `answers_from` run never overwrites the plain one."""
        return "shallow_vs_deep" if self.answers_from is None else f"shallow_vs_deep_answers_{self.answers_from.name}"

    @property
    def prefix_source(self) -> str:
        if self.answers_from is None:
            return f"the first k tokens of {self.harmful.name}'s affirmative targets (or its harmful prefixes)"
        return f"the first k tokens of {self.answers_from.name}'s own greedy answers"

    def kl_analysis(self) -> list[dict]:
        if self.reference not in self.models or not self.kl_pairs:
            return []
        base = self.models[self.reference]
        behaviors = self.harmful.load()
        answers = sample_answers(base, behaviors)
        pairs = [(b, answers[b.id]) for b in behaviors if b.id in answers][: self.kl_pairs]
        out = []
        for label, model in self.models.items():
            if label == self.reference:
                continue
            stats = kl.analyse(model, base, pairs, self.out / "kl" / label, self.kl_positions)
            out.append({"model": label, "KL first 5": stats["kl_first_5"], "KL total": stats["kl_total"],
                        "KL share first 5 (%)": 100 * stats["share_first_5"]})
        return out

    def plot(self, side: pd.DataFrame) -> None:
        """ASR against the prefill length actually used (a k beyond a short target prefills the whole target),
        with each line's 95 % band."""
        lines = [(row["model"], [row.get(f"prefill tokens k={k}", k) for k in self.lengths],
                  *([row.get(f"ASR k={k}{end}") for k in self.lengths] for end in ("", "_lo", "_hi")))
                 for _, row in side.iterrows()]
        source = "targets" if self.answers_from is None else f"{self.answers_from.name}'s answers"
        plots.asr_lines(self.out / f"{self.stem}.png", lines, "prefilled harmful tokens (mean actually prefilled)",
                         f"Prefilling attack on {self.harmful.name} (prefix: {source})")
