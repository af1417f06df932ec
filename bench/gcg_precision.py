"""How far the bf16 copy's candidate losses are from float32 ones, on behaviors the GCG bench does not report.

`attack.precision=auto` scores a step's candidates with a bf16 copy of a float32 model and re-scores
in float32 every candidate within `LOW_MARGIN` of the lowest bf16 loss (at most `MAX_RESCORE`). The
winner is the float32 one whenever every candidate's bf16 error is under `LOW_MARGIN / 2`. This bench
measures that error: for each step of a plain GCG run (the harness optimizer, float32 scoring), every
candidate is scored both ways without pruning, and it reports the error's quantiles, where the float32
winner ranks under bf16, how many candidates the margin shortlists, and the time of each full scoring.

Run on AdvBench behaviors the GCG bench does not use (it takes `AdvBench(limit=4)`; this takes the
next behaviors of `AdvBench(limit=14)` outside that set), so bench/gcg.py stays a held-out measure of
the setting chosen here.

    python bench/gcg_precision.py --models smollm2-aligned --behaviors 4 --steps 3
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import DATA, write

import attacks.gcg.scorer as scorer_module
from attacks.gcg.optimizer import GCG, GCGSettings, Speed
from attacks.gcg.slot import SuffixSlot
from benchmarks.advbench import AdvBench
from harness import config
from harness.config import instantiate

INIT = " !" * 20
MARGINS = (0.01, 0.02, 0.05, 0.1)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="smollm2-aligned")
    parser.add_argument("--held-out", type=int, default=4, help="exclude the behaviors of AdvBench(limit=N) (the GCG bench's)")
    parser.add_argument("--behaviors", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--topk", type=int, default=256)
    parser.add_argument("--name", default="gcg_precision")
    args = parser.parse_args()

    reserved = {b.id for b in AdvBench(data_dir=str(DATA), limit=args.held_out).load()}
    pool = AdvBench(data_dir=str(DATA), limit=args.held_out + args.behaviors + 10).load()
    behaviors = [b for b in pool if b.id not in reserved][: args.behaviors]
    print("behaviors:", [b.id for b in behaviors], "held out:", sorted(reserved), flush=True)
    rows = []
    for name in args.models.split(","):
        model = instantiate(config.compose([f"model={name}", f"data_dir={DATA}"]).model)
        model.hf
        for behavior in behaviors:
            original = scorer_module.Scorer.best

            def best(self, candidates, positions, grad, prune=True, _behavior=behavior, _model=name):
                low = scorer_module.Scorer(self.hf, [p.slot for p in self.parts], precision="bfloat16")
                start = time.perf_counter()
                exact, _ = self.losses(candidates, positions, grad, prune=False)
                t32 = time.perf_counter() - start
                start = time.perf_counter()
                approx, _ = low.losses(candidates, positions, grad, prune=False, low=True)
                t16 = time.perf_counter() - start
                error = (approx - exact).abs().tolist()
                winner = int(exact.argmin())
                rank = int((approx < approx[winner]).sum())
                rows.append({
                    "model": _model, "behavior": _behavior.id, "step": len([r for r in rows if r["behavior"] == _behavior.id]),
                    "candidates": len(candidates), "error_median": statistics.median(error),
                    "error_p90": quantile(error, 0.9), "error_p99": quantile(error, 0.99), "error_max": max(error),
                    "winner_bf16_rank": rank, "winner_bf16_gap": float(approx[winner] - approx.min()),
                    "same_winner": winner == int(approx.argmin()),
                    "bf16_pick_excess": float(exact[int(approx.argmin())] - exact[winner]),
                    **{f"shortlist_{m}": int((approx <= approx.min() + m).sum()) for m in MARGINS},
                    "seconds_float32": t32, "seconds_bf16": t16})
                print(rows[-1], flush=True)
                return original(self, candidates, positions, grad, prune=prune)

            scorer_module.Scorer.best = best
            try:
                settings = GCGSettings(suffix_init=INIT, steps=args.steps, search_width=args.width, topk=args.topk)
                GCG(model, settings, Speed(precision="float32"), progress=False).optimize(
                    [behavior], [SuffixSlot.build(model, behavior)], behavior.id)
            finally:
                scorer_module.Scorer.best = original
        del model
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    errors_max = [r["error_max"] for r in rows]
    summary = {
        "settings": vars(args), "behaviors": [b.id for b in behaviors], "held_out": sorted(reserved), "steps_measured": len(rows),
        "error_max_over_steps": max(errors_max), "error_p99_median_over_steps": statistics.median(r["error_p99"] for r in rows),
        "steps_with_error_max_under_half_margin": {str(m): sum(e < m / 2 for e in errors_max) for m in MARGINS},
        "winner_bf16_gap_max": max(r["winner_bf16_gap"] for r in rows),
        "same_winner_steps": sum(r["same_winner"] for r in rows),
        "shortlist_median": {str(m): statistics.median(r[f"shortlist_{m}"] for r in rows) for m in MARGINS},
        "speedup_bf16_full_scoring": statistics.median(r["seconds_float32"] / r["seconds_bf16"] for r in rows),
    }
    notes = ("bf16 copy vs float32 candidate losses (no pruning), every candidate of each GCG step, AdvBench behaviors "
             f"{', '.join(b.id for b in behaviors)} (not bench/gcg.py's: {', '.join(sorted(reserved))}). `winner_bf16_gap`: how "
             "far above the lowest bf16 loss the float32 winner's bf16 loss is (the margin must exceed it for the "
             "shortlist to hold the winner); `bf16_pick_excess`: float32 loss of bf16's pick minus the winner's.")
    print(write(args.name, rows, summary, notes))


if __name__ == "__main__":
    main()
