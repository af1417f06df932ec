"""Training step time in fp32 vs bf16 autocast (`train.bf16`), side by side in one process.

Same model, examples (the safety-SFT mix: HarmBench refusals + AlpacaEval answers), batch size,
length-grouped order and initial weights; the two runs alternate (fp32, bf16, fp32, bf16, ...)
so that a change in the machine's load hits both. Reported: seconds per step of each run, the
bf16 / fp32 ratio per pair with a 95 % t interval over the pairs, the loss after the last step
(bf16 must not change what is learned much: the dev sets are the real check, see the README), and
whether the CPU has native bf16 (avx512_bf16 / amx_bf16), without which autocast is emulated.
Writes results/bench/training_precision.{json,md}.

    python bench/training_precision.py                 # embedded SmolLM2, 3 pairs x 8 steps x batch 8
    python bench/training_precision.py --model tiny --pairs 2
"""

from __future__ import annotations

import argparse
import os
import statistics

from common import safety_sft_examples, write

from harness.training.loop import Objective, TrainSettings, fit, load_trainable, native_bf16_cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()

    import torch
    from scipy import stats

    model, examples = safety_sft_examples(args.model, args.steps * args.batch_size)

    rows = []
    for pair in range(args.pairs):
        for bf16 in (False, True):
            settings = TrainSettings(lr=1e-5, epochs=1, batch_size=args.batch_size, warmup_steps=0, bf16=bf16,
                                     max_steps=args.steps, seed=pair)
            torch.manual_seed(0)
            out = fit(load_trainable(model, settings), model, lambda epoch: examples, examples, settings, Objective())
            rows.append({"pair": pair, "precision": "bf16 autocast" if bf16 else "fp32", "seconds": out["seconds"],
                         "s_per_step": out["seconds"] / args.steps, "tokens_per_s": out["tokens"] / out["seconds"],
                         "last_loss": out["history"][-1]["loss"]})
    ratios = [b["s_per_step"] / f["s_per_step"] for f, b in zip(rows[::2], rows[1::2], strict=True)]
    mean = statistics.fmean(ratios)
    half = (stats.t.ppf(0.975, len(ratios) - 1) * statistics.stdev(ratios) / len(ratios) ** 0.5) if len(ratios) > 1 else float("nan")
    summary = {"model": model.name, "steps": args.steps, "batch_size": args.batch_size, "pairs": args.pairs,
               "native_bf16_cpu": native_bf16_cpu(), "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
               "bf16_over_fp32_step_time": mean, "ci95": [mean - half, mean + half],
               "speedup": 1 / mean}
    print(write("training_precision", rows, summary, notes=__doc__.split("\n\n")[0]).read_text())


if __name__ == "__main__":
    main()
