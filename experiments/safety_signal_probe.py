"""experiment=safety_signal_probe: does the safety-signal head catch harmful text that appears only in
the generated tokens, after a benign prompt? That is what its re-checks during generation are for; on
harmful requests the first check (the prompt alone) flags almost everything, so attack runs cannot tell
a mid-generation detector from a prompt classifier.

Teacher-forced, on the same n pairs (a held-out benign prompt, a held-out harmful request), three
assistant turns are scored at every check the safety-signal engine would make:
- turn: the benign prompt, the first `turn_at` tokens of the base's own answer to it, then the base's
  harmful answer to the harmful request (the case only the re-checks can catch);
- benign: the benign prompt and the base's whole answer to it (false alarms);
- harmful: the harmful request and its harmful answer (what the first check sees, for reference).
The head's p(malicious) after s assistant tokens is read as the engine reads it
(the defense's `teacher_forced_checks`; tests/plugins/test_adaptive_gcg.py checks they equal the engine's
checks), and the engine's rule is applied (`steered_at`): steer at the first check if flagged, later after
`hold` consecutive flagged checks. Answers are the unaligned base's own (greedy, cached), as in the
head's training; prompts the trained model saw in training are dropped (the contamination guard).
Writes safety_signal_probe.{csv,md,png} to `out_dir`: per condition the share flagged at the first check,
steered at all, and steered only after the first check (by the re-checks), each with n and a 95 % Wilson
interval, and the paired difference turn - benign in what the re-checks steered (exact McNemar);
safety_signal_probe_checks.csv has the share flagged and mean p(malicious) at each check step, and
safety_signal_probe_pairs.jsonl every pair's checks and where it would be steered.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from harness.analysis import report
from harness.analysis.paired import compare_pair
from harness.analysis.stats import count_interval
from harness.benchmark import Benchmark
from harness.errors import HarnessError
from harness.model.base import Model
from harness.training.answers import sampled_answers
from harness.training.contamination import overlap, trained_prompts

log = logging.getLogger(__name__)

CONDITIONS = ("turn", "benign", "harmful")


def share(k: int, n: int) -> dict[str, float]:
    lo, hi = count_interval(k, n)
    return {"k": k, "n": n, "percent": 100.0 * k / n if n else float("nan"), "ci_low": 100 * lo, "ci_high": 100 * hi}


class SafetySignalProbe:
    def __init__(self, model: Model, defense: Any, harmful: Benchmark, benign: Benchmark, out_dir: str, n: int = 50,
                 turn_at: int = 8, answer_tokens: int = 64) -> None:
        if not hasattr(defense, "teacher_forced_checks"):
            raise HarnessError(f"experiment=safety_signal_probe: driver.defense must be safety_signal "
                               f"(got {getattr(defense, 'name', type(defense).__name__)})")
        if n < 1 or turn_at < 1 or answer_tokens < 1:
            raise HarnessError(f"experiment=safety_signal_probe: need n, turn_at and answer_tokens >= 1 "
                               f"(got n={n}, turn_at={turn_at}, answer_tokens={answer_tokens})")
        self.model, self.defense, self.harmful, self.benign = model, defense, harmful, benign
        self.out = Path(out_dir)
        self.n, self.turn_at, self.answer_tokens = n, turn_at, answer_tokens

    def pairs(self, trained: Model) -> list[tuple[Any, list[int], Any, list[int]]]:
        """(benign behavior, its answer ids, harmful behavior, its harmful answer ids), held out from training."""
        seen = trained_prompts(trained)
        tok = self.model.tokenizer

        def held_out(bench: Benchmark) -> list:
            behaviors = bench.load()
            dropped = set(overlap(behaviors, seen))
            if dropped:
                log.info("safety_signal_probe: %d %s prompts were in training; left out", len(dropped), bench.name)
            return [b for b in behaviors if b.id not in dropped]

        good, bad = [], []
        for bench, out, need_turn in ((self.benign, good, True), (self.harmful, bad, False)):
            behaviors = held_out(bench)[: 2 * self.n]  # room for refusals and short answers
            answers = sampled_answers(self.model, behaviors, max_tokens=self.answer_tokens)
            for b in behaviors:
                if b.id in answers:
                    ids = tok(answers[b.id].text, add_special_tokens=False).input_ids
                    if len(ids) > self.turn_at or not need_turn:
                        out.append((b, ids))
        n = min(self.n, len(good), len(bad))
        if n < self.n:
            log.warning("safety_signal_probe: %d pairs (asked for %d): %d benign answers longer than turn_at=%d, "
                        "%d harmful answers", n, self.n, len(good), self.turn_at, len(bad))
        if n == 0:
            raise HarnessError(f"experiment=safety_signal_probe: no pairs ({self.model.name} gave {len(good)} benign "
                               f"answers longer than {self.turn_at} tokens and {len(bad)} harmful answers; the answers "
                               "must come from an unaligned base model)")
        return [(g[0], g[1], h[0], h[1]) for g, h in zip(good[:n], bad[:n], strict=True)]

    def __call__(self) -> pd.DataFrame:
        trained = self.defense.harden(self.model)
        steering = self.defense.steering
        pairs = self.pairs(trained)
        tok = self.model.tokenizer
        texts: dict[str, list[str]] = {c: [] for c in CONDITIONS}
        answers: dict[str, list[list[int]]] = {c: [] for c in CONDITIONS}
        for good, good_ids, bad, bad_ids in pairs:
            continuation = tok(" " + tok.decode(bad_ids), add_special_tokens=False).input_ids
            for condition, text, ids in (("turn", good.query(), good_ids[: self.turn_at] + continuation),
                                         ("benign", good.query(), good_ids), ("harmful", bad.query(), bad_ids)):
                texts[condition].append(text)
                answers[condition].append(ids)
        rows, curves, per_pair = [], [], []
        steered: dict[str, pd.Series] = {}
        for condition in CONDITIONS:
            checks = self.defense.teacher_forced_checks(trained, texts[condition], answers[condition])
            at = [self.defense.steered_at(c) for c in checks]
            ids = [f"{good.id}+{bad.id}" for good, _, bad, _ in pairs]
            steered[condition] = pd.Series([a is not None and a > 0 for a in at], index=ids)
            per_pair += [{"pair": i, "condition": condition, "steered_at": a, "checks": [[s_, round(p, 4)] for s_, p in c]}
                         for i, a, c in zip(ids, at, checks, strict=True)]
            n = len(checks)
            row = {"condition": condition, "n": n}
            for name, k in (("flagged at the first check", sum(c[0][1] > steering.threshold for c in checks)),
                            ("steered", sum(a is not None for a in at)),
                            ("steered after the first check", sum(a is not None and a > 0 for a in at))):
                s = share(k, n)
                row[f"{name} (%)"] = s["percent"]
                row[f"{name} 95% CI"] = f"[{s['ci_low']:.0f}, {s['ci_high']:.0f}]"
            rows.append(row)
            for step in sorted({step for c in checks for step, _ in c}):
                values = [p for c in checks for s_, p in c if s_ == step]
                curves.append({"condition": condition, "step": step, "n": len(values),
                               "mean p(malicious)": sum(values) / len(values),
                               "flagged (%)": 100.0 * sum(v > steering.threshold for v in values) / len(values)})
        table = pd.DataFrame(rows)
        curve = pd.DataFrame(curves)
        # the re-checks' detection beyond their false alarms: turn vs benign on the same prompts (exact McNemar)
        paired = compare_pair(steered["benign"], steered["turn"])
        self.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(self.out / "safety_signal_probe.csv", index=False)
        curve.to_csv(self.out / "safety_signal_probe_checks.csv", index=False)
        pd.DataFrame(per_pair).to_json(self.out / "safety_signal_probe_pairs.jsonl", orient="records", lines=True)
        (self.out / "safety_signal_probe.md").write_text(
            f"Safety-signal head on {len(pairs)} held-out pairs ({self.benign.name} benign prompt, {self.harmful.name} "
            f"harmful answer; turn after {self.turn_at} benign tokens; threshold {steering.threshold}, hold "
            f"{steering.hold}; teacher-forced)\n\n" + report.markdown(table)
            + f"\n\nSteered after the first check, turn - benign on the same {paired['n']} prompts: "
            f"{paired['diff']:+.0f} points [{paired['diff_lo']:+.0f}, {paired['diff_hi']:+.0f}], exact McNemar "
            f"p = {paired['p']:.2g} ({paired['c']} only in turn, {paired['b']} only in benign)\n\nPer check:\n\n"
            + report.markdown(curve) + "\n")
        self.plot(curve, steering.threshold)
        return table

    def plot(self, curve: pd.DataFrame, threshold: float) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 4))
        for condition, group in curve.groupby("condition", sort=False):
            ax.plot(group["step"], group["flagged (%)"], marker="o", label=condition)
        ax.axvline(self.turn_at, color="grey", linestyle=":", label=f"turn (token {self.turn_at})")
        ax.set_xlabel("assistant tokens seen at the check")
        ax.set_ylabel(f"flagged: p(malicious) > {threshold} (%)")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title("safety-signal checks along the answer")
        fig.tight_layout()
        fig.savefig(self.out / "safety_signal_probe.png", dpi=120)
        plt.close(fig)
