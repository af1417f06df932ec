"""experiment=finetune_attacks: fine-tuning attacks x {standard SFT, constrained SFT} on the
aligned target -> ASR, utility after benign fine-tuning, and ASR as a function of steps.

Every fine-tuned model is cached, and every evaluation is an ordinary run folder under
`out_dir/<defense>/<attack>/...`, so the experiment resumes like any run. The attacks, the
defenses (fine-tuning APIs) and the prompt-level `direct` attack of the aligned model's row
come from the config (`conf/experiment/finetune_attacks.yaml`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from harness import config
from harness.analysis import plots, report
from harness.attack import Attack
from harness.benchmark import Benchmark
from harness.defense import Defense
from harness.engine.base import Engine
from harness.judge.base import Judge
from harness.model.base import Model
from harness.run.loop import evaluate
from harness.types import Sampling

log = logging.getLogger(__name__)


class FinetuneAttacks:
    def __init__(self, model: Model, attacks: Mapping[str, Attack], defenses: Mapping[str, Defense],
                 harmful: Benchmark, judge: Judge, engine: Callable[[Model], Engine], sampling: Mapping, out_dir: str,
                 utility: Benchmark | None = None, utility_judge: Judge | None = None, utility_sampling: Mapping | None = None,
                 utility_attacks: tuple[str, ...] = (), steps_attack: str | None = None,
                 direct: Attack | None = None) -> None:
        """`attacks`: fine-tuning attacks (each `tamper`s the model); `direct`: the prompt-level attack of the
        aligned model's own row (the config's `attack=direct` when not given)."""
        self.model = model
        self.attacks = dict(attacks)
        self.defenses = dict(defenses)
        self.harmful = harmful
        self.judge = judge
        self.engine = engine
        self.sampling = Sampling(**sampling)
        self.out = Path(out_dir)
        self.utility = utility
        self.utility_judge = utility_judge
        self.utility_sampling = Sampling(**(utility_sampling or sampling))
        self.utility_attacks = list(utility_attacks)
        self.steps_attack = steps_attack
        self.direct = direct or config.option("attack", "direct")

    def asr_rows(self, label: str, attack: Attack, defense_label: str, defense: Defense) -> list[dict]:
        table = evaluate(self.model, self.harmful, attack, defense, self.judge, self.engine, self.sampling,
                         self.out / defense_label / label / self.harmful.name)
        rows = []
        for r in table.to_dict("records"):
            variant = label + (f" ({'with' if r['trigger'] else 'without'} trigger)" if "trigger" in r and pd.notna(r.get("trigger")) else "")
            rows.append({"attack": variant, "defense": defense_label, "asr": r["asr"], "asr_lo": r["asr_lo"],
                         "asr_hi": r["asr_hi"], "n": r["n"]})
        return rows

    def utility_row(self, label: str, attack: Attack, defense_label: str, defense: Defense) -> dict:
        table = evaluate(self.model, self.utility, attack, defense, self.utility_judge, self.engine, self.utility_sampling,
                         self.out / defense_label / label / self.utility.name)
        return {"attack": label, "defense": defense_label, f"{self.utility.name} accuracy": 100 * float(table["mean_score"].iloc[0])}

    def __call__(self) -> pd.DataFrame:
        rows, utility = [], []
        first_defense = next(iter(self.defenses.values()))
        rows += self.asr_rows("none (aligned model)", self.direct, "-", first_defense)
        if self.utility is not None:
            utility.append(self.utility_row("none (aligned model)", self.direct, "-", first_defense))
        for defense_label, defense in self.defenses.items():
            for label, attack in self.attacks.items():
                rows += self.asr_rows(label, attack, defense_label, defense)
                if self.utility is not None and label in self.utility_attacks:
                    utility.append(self.utility_row(label, attack, defense_label, defense))
        long = pd.DataFrame(rows)
        table = long.pivot_table(index="attack", columns="defense", values=["asr", "asr_lo", "asr_hi"], sort=False)
        table = table[[(v, d) for d in long["defense"].unique() for v in ("asr", "asr_lo", "asr_hi") if (v, d) in table.columns]]
        table.columns = [(f"ASR {d}" if d != "-" else "ASR") + v.removeprefix("asr") for v, d in table.columns]  # "ASR x_lo"
        table = table.reset_index()
        if utility:
            u = pd.DataFrame(utility).pivot_table(index="attack", columns="defense", sort=False).reset_index()
            u.columns = ["attack", *[f"{a} {d}".replace(" -", "") for a, d in u.columns[1:]]]
            table = table.merge(u, on="attack", how="left")
        self.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(self.out / "finetune_attacks.csv", index=False)
        (self.out / "finetune_attacks.md").write_text(report.markdown(table) + "\n")
        if self.steps_attack:
            self.steps_curve()
        return table

    def steps_curve(self) -> pd.DataFrame:
        """ASR of the checkpoints saved during one attack's fine-tuning (train.save_steps)."""
        base = self.attacks[self.steps_attack]
        steps = list(base.train.save_steps)
        if not steps:
            log.warning("steps_attack=%s saves no checkpoints (train.save_steps is empty): no ASR-vs-steps curve", self.steps_attack)
            return pd.DataFrame()
        rows = []
        aligned = self.asr_rows("aligned", self.direct, "-", next(iter(self.defenses.values())))[0]
        keep = ("asr", "asr_lo", "asr_hi", "n")
        for defense_label, defense in self.defenses.items():
            rows.append({"defense": defense_label, "step": 0, **{k: aligned[k] for k in keep}})
            for step in steps:
                # the same configured attack, evaluated at a checkpoint (its class: no attack is imported here)
                attack = type(base)(data=base.data, train=base.train.model_dump(), then=base.then, step=step)
                (row,) = self.asr_rows(f"{self.steps_attack}@{step}", attack, defense_label, defense)[:1]
                rows.append({"defense": defense_label, "step": step, **{k: row[k] for k in keep}})
        curve = pd.DataFrame(rows)
        curve.to_csv(self.out / "asr_vs_steps.csv", index=False)
        cells = curve.assign(asr=[f"{a:.0f} [{lo:.0f}, {hi:.0f}]" for a, lo, hi in
                                  zip(curve["asr"], curve["asr_lo"], curve["asr_hi"], strict=True)])
        (self.out / "asr_vs_steps.md").write_text(
            f"ASR (%) [95 % Wilson interval] on {self.harmful.name} (n = {int(curve['n'].max())}) after each step of "
            f"{self.steps_attack} fine-tuning\n\n"
            + report.markdown(cells.pivot(index="step", columns="defense", values="asr").reset_index()) + "\n")
        self.plot_steps(curve)
        return curve

    def plot_steps(self, curve: pd.DataFrame) -> None:
        lines = [(f"{label} fine-tuning", part["step"], part["asr"], part["asr_lo"], part["asr_hi"])
                 for label, part in curve.groupby("defense", sort=False)]
        plots.asr_lines(self.out / "asr_vs_steps.png", lines, f"fine-tuning steps ({self.steps_attack})",
                         f"ASR on {self.harmful.name} during harmful fine-tuning of {self.model.name}")
