"""Safety-signal decoding vs plain generation: the cost of re-checking the [CLS] head.

Same model, same prompts (AdvBench + AlpacaEval, half each), greedy, same max tokens, same
batch size; measured side by side in one run, alternating, best of `--repeats`:
- `plain`: the HF engine (`transformers.generate`);
- `checks only`: safety-signal decoding with a threshold that never fires: every scheduled
  check runs, nothing is steered, outputs must be identical to `plain` (checked);
- `steering`: the default threshold (0.5): checks run and flagged rows get the refusal.
  Output lengths change (refusals are short, or long), so compare its seconds per token.

Writes results/bench/safety_signal.{json,md} (rows per model; the ratios to `plain`).

    python bench/safety_signal.py                         # tiny (random head) and the trained smollm2 model
    python bench/safety_signal.py --models tiny --prompts 64
"""

from __future__ import annotations

import argparse
import time

from common import DATA, write

from benchmarks.advbench import AdvBench
from benchmarks.alpaca_eval import AlpacaEval
from defenses.safety_signal.decoding import HeadClassifier, SafetySignalEngine, Steering
from defenses.safety_signal.head import SafetyHead
from harness import config
from harness.config import instantiate
from harness.engine.hf import HFEngine
from harness.types import Message, Request, Sampling


def load(name: str):
    """(model, head): the tiny model with a random head, or the embedded model hardened by defense=safety_signal."""
    if name == "tiny":
        model = instantiate(config.compose(["model=tiny"]).model)
        return model, SafetyHead.for_model(model.hf, window=10)
    cfg = config.compose([f"model={name}", "defense=safety_signal", "defense.decisions_log=null", f"data_dir={DATA}"])
    defense = instantiate(cfg.defense)
    model = defense.harden(instantiate(cfg.model))  # trained once, then cached
    return model, SafetyHead.load(model.folder, device=model.hf.device, dtype=model.hf.dtype)


def timed(engine, requests):
    start = time.perf_counter()
    out = engine.generate(requests)
    return time.perf_counter() - start, out


def bench(name: str, prompts: int, max_tokens: int, batch_size: int, repeats: int) -> list[dict]:
    model, head = load(name)
    half = prompts // 2
    behaviors = AdvBench(data_dir=str(DATA), limit=half).load() + AlpacaEval(data_dir=str(DATA)).load()[300 : 300 + prompts - half]
    sampling = Sampling(max_tokens=max_tokens)
    requests = [Request(behavior_id=b.id, messages=(Message(role="user", content=b.query()),), sampling=sampling)
                for b in behaviors]
    engines = {
        "plain": HFEngine(model, batch_size=batch_size, progress=False),
        "checks only": SafetySignalEngine(model, HeadClassifier(head), Steering(threshold=1.0), batch_size=batch_size,
                                          progress=False),
        "steering": SafetySignalEngine(model, HeadClassifier(head), Steering(), batch_size=batch_size, progress=False),
    }
    engines["plain"].generate(requests[:2])  # warm-up
    best: dict[str, tuple[float, list]] = {}
    for _ in range(repeats):
        for label, engine in engines.items():
            seconds, out = timed(engine, requests)
            if label not in best or seconds < best[label][0]:
                best[label] = (seconds, out)
    plain_s, plain_out = best["plain"]
    plain_tokens = sum(c.completion_tokens for c in plain_out)
    rows = []
    for label, (seconds, out) in best.items():
        tokens = sum(c.completion_tokens for c in out)
        decisions = getattr(engines[label], "decisions", {})
        rows.append({
            "model": model.name, "decoding": label, "seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
            "time_ratio": seconds / plain_s, "per_token_ratio": (seconds / tokens) / (plain_s / plain_tokens),
            "identical_to_plain": f"{sum(a.text == b.text for a, b in zip(out, plain_out))}/{len(out)}",
            "steered": f"{sum(d['flagged'] for d in decisions.values())}/{len(decisions)}" if decisions else "-",
            "checks_per_completion": (sum(len(d["checks"]) for d in decisions.values()) / len(decisions)) if decisions else 0.0,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"], help="tiny, or model cards hardened by defense=safety_signal")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    rows = [row for name in args.models for row in bench(name, args.prompts, args.max_tokens, args.batch_size, args.repeats)]
    checks = {r["model"]: r["time_ratio"] for r in rows if r["decoding"] == "checks only"}
    summary = {"prompts": args.prompts, "max_tokens": args.max_tokens, "batch_size": args.batch_size, "repeats": args.repeats,
               "schedule": Steering().schedule.model_dump(), "checks_only_time_ratio": checks,
               "below_1.2x": {m: r < 1.2 for m, r in checks.items()}}
    path = write("safety_signal", rows, summary, notes=__doc__.split("\n\n")[0])
    print(path.read_text())


if __name__ == "__main__":
    main()
