"""The harness GCG vs nanoGCG (PyPI `nanogcg`), same model, behaviors, targets and settings.

Both optimize the same suffix slot (end of the user turn, the model's own chat template),
from the same initial suffix, for the same number of steps, search width, top-k and seed,
one token swapped per candidate, non-ASCII and special tokens excluded, candidates that do
not re-tokenize to themselves dropped, no early stop, no candidate buffer, same dtype. They
run one after the other in one process. Reported per model: seconds per step (median over
steps, from the same per-step clock around each loop) and the best-loss curve (running
minimum of each step's chosen loss). Each run's final suffix is also re-scored the way the
engine will see it (template around query + suffix, plain forward), since nanoGCG checks
re-tokenization of the suffix alone and the harness checks it in the prompt.

nanoGCG 0.3.0 predates transformers 5: it indexes the returned cache as per-layer
(key, value) tuples and passes lists of them back, which transformers 5 rejects. A thin
adapter (`LegacyCache`) converts between the two at the model call, as transformers 4
did internally; nanoGCG's code and algorithm run unchanged.

Writes results/bench/gcg.{json,md,png}.

    pip install -e . scipy && pip install --no-deps nanogcg==0.3.0   # nanogcg pins transformers<=4.47.1, which the
                                                 # harness cannot use; its imports (torch, transformers, scipy, tqdm) come from here
    python bench/gcg.py                          # tiny + embedded SmolLM2, CPU-sized settings
    python bench/gcg.py --models smollm2 --steps 50 --width 512 --topk 256 --behaviors 5   # reference width (GPU)
    python bench/gcg.py --models smollm2-aligned --steps 5 --width 512 --topk 256 --name gcg_width512   # reference width, CPU
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

from common import DATA, OUT, write

from attacks.gcg.optimizer import GCG, GCGSettings, Speed
from attacks.gcg.scorer import LOW_MARGIN, low_precision
from attacks.gcg.slot import SuffixSlot
from benchmarks.advbench import AdvBench
from harness import config
from harness.config import instantiate
from harness.types import Message

INIT = " !" * 20


class StepClock:
    """Time stamps at every iteration of a tqdm-wrapped loop: both implementations loop over tqdm(range(steps))."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def tqdm(self, base):
        clock = self

        class Timed(base):
            def __iter__(self):
                for item in super().__iter__():
                    clock.stamps.append(time.perf_counter())
                    yield item
                clock.stamps.append(time.perf_counter())

        return Timed

    @property
    def steps(self) -> list[float]:
        return [b - a for a, b in zip(self.stamps, self.stamps[1:])]


class LegacyCache:
    """The HF model as nanoGCG 0.3.0 expects it (transformers 4.x cache format at the call boundary)."""

    def __init__(self, model) -> None:
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, *args, past_key_values=None, **kwargs):
        from transformers import Cache, DynamicCache

        if past_key_values is not None and not isinstance(past_key_values, Cache):
            past_key_values = DynamicCache(ddp_cache_data=[(k, v) for k, v in past_key_values], config=self._model.config)
        out = self._model(*args, past_key_values=past_key_values, **kwargs)
        if getattr(out, "past_key_values", None) is not None:
            out.past_key_values = tuple((layer.keys, layer.values) for layer in out.past_key_values.layers)
        return out


def rescore(model, behavior, suffix: str) -> float:
    """Target loss of query + suffix through the engine's own prompt (template rendered, tokenized whole)."""
    import torch

    prompt = model.prompt_ids([Message(role="user", content=behavior.query() + suffix)])
    target = model.tokenizer(behavior.target, add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model.hf(input_ids=torch.tensor([prompt + target[:-1]], device=model.hf.device)).logits[0, -len(target):]
    return float(torch.nn.functional.cross_entropy(logits.float(), torch.tensor(target, device=logits.device)))


def run_nanogcg(model, behavior, args) -> dict:
    import nanogcg
    import nanogcg.gcg as ngcg
    import torch

    clock, widths = StepClock(), []
    original_tqdm, original_filter = ngcg.tqdm, ngcg.filter_ids

    def counted_filter(ids, tokenizer):
        out = original_filter(ids, tokenizer)
        widths.append(out.shape[0])
        return out

    ngcg.tqdm, ngcg.filter_ids = clock.tqdm(original_tqdm), counted_filter
    config = nanogcg.GCGConfig(num_steps=args.steps, optim_str_init=INIT, search_width=args.width, topk=args.topk,
                               n_replace=1, buffer_size=0, early_stop=False, use_prefix_cache=True, allow_non_ascii=False,
                               filter_ids=True, seed=args.seed, verbosity="WARNING")
    messages = [{"role": "user", "content": behavior.query() + "{optim_str}"}]
    if model.system_prompt is not None:
        messages.insert(0, {"role": "system", "content": model.system_prompt})
    start = time.perf_counter()
    try:
        result = nanogcg.run(LegacyCache(model.hf), model.tokenizer, messages, behavior.target, config)
    finally:
        ngcg.tqdm, ngcg.filter_ids = original_tqdm, original_filter
        torch.use_deterministic_algorithms(False)  # nanogcg turns it on globally when seeded
    return {"seconds": time.perf_counter() - start, "step_seconds": clock.steps, "losses": list(result.losses),
            "suffix": result.best_string, "candidates": statistics.mean(widths)}


def run_harness(model, behavior, args) -> dict:
    import attacks.gcg.optimizer as opt

    clock = StepClock()
    original = opt.tqdm
    opt.tqdm = clock.tqdm(original)
    settings = GCGSettings(suffix_init=INIT, steps=args.steps, search_width=args.width, topk=args.topk, seed=args.seed)
    gcg = GCG(model, settings, Speed(precision=args.precision), progress=False)
    start = time.perf_counter()
    try:
        gcg.allowed  # the allowed-token mask is computed once per model (nanoGCG's equivalent runs in its set-up)
        found = gcg.optimize([behavior], [SuffixSlot.build(model, behavior)], behavior.id)
    finally:
        opt.tqdm = original
    return {"seconds": time.perf_counter() - start, "step_seconds": clock.steps, "losses": found.losses,
            "suffix": found.suffix, "candidates": None}


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95 % Student-t interval (n - 1 degrees of freedom); the mean alone for n = 1."""
    from scipy import stats

    mean = statistics.mean(values)
    if len(values) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def across_behaviors(runs: list[dict]) -> dict:
    """Per behavior: the speed-up (nanoGCG median s/step over the harness's) and the re-scored loss difference
    (harness - nanoGCG); over behaviors: the geometric-mean speed-up and the mean difference, each with a 95 % t-interval
    (n = behaviors; the speed-up's on log ratios)."""
    by = {}
    for r in runs:
        by.setdefault(r["behavior"], {})[r["impl"]] = r
    per = {b: {"speedup": statistics.median(v["nanogcg"]["step_seconds"]) / statistics.median(v["harness"]["step_seconds"]),
               "steps": len(v["harness"]["step_seconds"]),
               "rescored_loss_diff": v["harness"]["rescored"] - v["nanogcg"]["rescored"]} for b, v in by.items()}
    mean, low, high = t_interval([math.log(p["speedup"]) for p in per.values()])
    diff = t_interval([p["rescored_loss_diff"] for p in per.values()])
    return {"n_behaviors": len(per), "per_behavior": per,
            "speedup_geomean": math.exp(mean), "speedup_ci95": [math.exp(low), math.exp(high)],
            "speedup_range": [min(p["speedup"] for p in per.values()), max(p["speedup"] for p in per.values())],
            "rescored_loss_diff_mean": diff[0], "rescored_loss_diff_ci95": [diff[1], diff[2]],
            "rescored_lower_or_equal": sum(p["rescored_loss_diff"] <= 0 for p in per.values())}


def running_min(values: list[float]) -> list[float]:
    out, best = [], float("inf")
    for v in values:
        best = min(best, v)
        out.append(best)
    return out


def plot(curves: dict[str, dict[str, list[float]]], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4), squeeze=False)
    for ax, (model, lines) in zip(axes[0], curves.items(), strict=True):
        for label, values in lines.items():
            ax.plot(range(1, len(values) + 1), values, label=label, alpha=0.85,
                    linestyle="-" if label.startswith("harness") else "--")
        ax.set_title(f"{model}: best loss so far")
        ax.set_xlabel("step")
        ax.set_ylabel("target cross-entropy (mean over tokens)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="tiny,smollm2", help="model card names from conf/model, comma-separated")
    parser.add_argument("--behaviors", type=int, default=2, help="first N AdvBench behaviors, one suffix each")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=64, help="candidates per step (reference: 512)")
    parser.add_argument("--topk", type=int, default=64, help="tokens per position (reference: 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"],
                        help="the harness's candidate scoring (auto: bf16 where native, near-best re-scored in float32)")
    parser.add_argument("--name", default="gcg", help="results/bench/<name>.{json,md,png}")
    args = parser.parse_args()

    behaviors = AdvBench(data_dir=str(DATA), limit=args.behaviors).load()
    rows, curves, runs, scoring, spread = [], {}, [], {}, {}
    for name in args.models.split(","):
        model = instantiate(config.compose([f"model={name}", f"data_dir={DATA}"]).model)  # trained cards need the data
        model.hf  # load once, outside the timings
        low = low_precision(model.hf, args.precision)
        scoring[name] = (f"{low} model copy, candidates within {LOW_MARGIN} of the lowest re-scored in float32" if low
                         else "model precision")
        curves[name] = {}
        for b in behaviors:
            for impl, fn in (("nanogcg", run_nanogcg), ("harness", run_harness)):
                out = fn(model, b, args)
                out.update(model=name, behavior=b.id, impl=impl, rescored=rescore(model, b, out["suffix"]),
                           best=min(out["losses"]))
                runs.append(out)
                curves[name][f"{impl} {b.id}"] = running_min(out["losses"])
                print(f"{name} {b.id} {impl}: {statistics.median(out['step_seconds']):.3f} s/step, best loss {out['best']:.3f} "
                      f"(re-scored {out['rescored']:.3f})", flush=True)
        for impl in ("nanogcg", "harness"):
            mine = [r for r in runs if r["model"] == name and r["impl"] == impl]
            steps = [s for r in mine for s in r["step_seconds"]]
            rows.append({"model": name, "implementation": impl, "s_per_step_median": statistics.median(steps),
                         "s_per_step_mean": statistics.mean(steps),
                         "best_loss_mean": statistics.mean(r["best"] for r in mine),
                         "rescored_loss_mean": statistics.mean(r["rescored"] for r in mine),
                         "initial_to_best": " / ".join(f"{r['losses'][0]:.2f}->{r['best']:.2f}" for r in mine)})
        nano, ours = rows[-2], rows[-1]
        nano["speedup"], ours["speedup"] = 1.0, nano["s_per_step_median"] / ours["s_per_step_median"]
        spread[name] = across_behaviors([r for r in runs if r["model"] == name])
        print(json.dumps(spread[name], indent=1), flush=True)
        del model
    plot(curves, OUT / f"{args.name}.png")
    summary = {
        "settings": {"steps": args.steps, "search_width": args.width, "topk": args.topk, "seed": args.seed,
                     "suffix_init": INIT, "behaviors": [b.id for b in behaviors], "n_replace": 1, "filter": True,
                     "allow_non_ascii": False, "early_stop": False, "buffer_size": 0, "dtype": "float32",
                     "harness_scoring": scoring},
        "speedup_per_step": {r["model"]: r["speedup"] for r in rows if r["implementation"] == "harness"},
        "across_behaviors": spread,
        "best_loss_after_steps": {f"{r['model']} {r['implementation']}": r["best_loss_mean"] for r in rows},
        "runs": [{k: v for k, v in r.items() if k != "step_seconds"} | {"step_seconds": [round(s, 4) for s in r["step_seconds"]]}
                 for r in runs],
    }
    notes = (__doc__.split("\n\n")[0] + "\n\n" +
             f"Settings: {args.steps} steps, search width {args.width}, top-k {args.topk}, seed {args.seed}, "
             f"first {len(behaviors)} AdvBench behaviors (one suffix each), 20-token \"!\" init, float32 "
             f"models (the harness scores candidates as `harness_scoring` says; every loss it reports is float32), "
             f"CPU threads per `machine`. `speedup` = nanoGCG s/step / harness s/step. Loss curves: {args.name}.png.")
    path = write(args.name, rows, summary, notes=notes)
    print(path.read_text())


if __name__ == "__main__":
    main()
