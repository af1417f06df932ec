"""Generation speed: the per-prompt `generate` loop research code uses vs the batched HF engine
(encoding each shared prompt once, and as it was before: every row encoded on its own) vs the
vLLM engine, and the decoding-attack sweep as one batched generation vs the reference
implementation's loop (one `generate` call per prompt per configuration).

Part 1, greedy: same model, same prompts (AdvBench), same max tokens, measured in one run;
tokens/s of each and the ratio of wall times to the loop's; greedy outputs compared with the
loop's. The engines run `--repeats` times each, alternating (median and range); the loop once,
its ratio's 95 % interval from the spread of its per-prompt times (a t interval on the mean).
Part 2, the decoding sweep (attack=decoding, its full default grid: greedy, 20 temperatures,
20 top-p, 9 top-k values, each with and without the system prompt = 100 configurations per
prompt, 2 distinct prompts per behavior): the harness's sweep (all requests to the engine at
once, per-row sampling) against the reference loop. The loop is timed on a random sample of
(prompt, configuration) calls and extrapolated as mean seconds per call x number of calls
(95 % t interval of the mean); the output says so. Every greedy configuration is also run by
the loop and compared. vLLM (engine=vllm, prefix caching on) is measured when it imports, else
recorded as not installed. Writes results/bench/generation.{json,md}.

    python bench/generation.py                       # embedded SmolLM2 (CPU, 2 cores: ~8 min)
    python bench/generation.py --model tiny --prompts 8 --sweep-prompts 2 --loop-calls 10 --name smoke   # smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time
from typing import Any

from common import DATA, ROOT, write

from attacks.decoding import DecodingAttack
from benchmarks.advbench import AdvBench
from harness import config
from harness.config import instantiate
from harness.engine.hf import HFEngine
from harness.types import Message, Request, Sampling


def loop_call(model, request: Request) -> tuple[str, int]:
    """One `generate` call for one prompt and one configuration, as the reference code does
    (transformers' own sampling; top_k=0 turns off the default top-k of 50)."""
    import torch

    tok, hf = model.tokenizer, model.hf
    s = request.sampling
    ids = torch.tensor([model.prompt_ids(request.messages, request.prefill)], device=hf.device)
    sampling: dict[str, Any] = ({"do_sample": False} if s.greedy else
                                {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k})
    with torch.inference_mode():
        out = hf.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=s.max_tokens,
                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **sampling)
    new = out[0, ids.shape[1]:].tolist()
    new = new[: new.index(tok.eos_token_id)] if tok.eos_token_id in new else new
    return tok.decode(new, skip_special_tokens=True), len(new)


def timed(fn, *args) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def t95(n: int) -> float:
    """Two-sided 95 % Student t quantile with n - 1 degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1)) if n > 1 else float("nan")


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean of `values` and its 95 % t interval."""
    mean = statistics.fmean(values)
    half = t95(len(values)) * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return mean, mean - half, mean + half


def vllm_engine(model, args):
    """The vLLM engine and its start-up seconds, or (None, reason) when it cannot run here."""
    try:
        from harness.engine.vllm import VLLMEngine

        engine = VLLMEngine(model, enforce_eager=True, progress=False)
        _, startup = timed(lambda: engine.llm)
        return engine, startup
    except Exception as exc:  # noqa: BLE001 - the bench records why, whatever it is
        return None, f"not installed or not runnable here: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def row(part: str, method: str, seconds: float, tokens: int, calls: int, baseline: float | None, note: str = "",
        interval: tuple[float, float] | None = None) -> dict:
    """One method's figures; `interval` is the baseline's 95 % interval (seconds), giving the ratio's."""
    ratio = baseline / seconds if baseline else 1.0
    low, high = (interval[0] / seconds, interval[1] / seconds) if baseline and interval else (None, None)
    return {"part": part, "method": method, "seconds": seconds, "calls": calls, "tokens": tokens,
            "tokens_per_s": tokens / seconds if seconds else float("nan"), "speedup_vs_loop": ratio,
            "speedup_95_low": low, "speedup_95_high": high, "note": note}


def identical(a: list, b: list) -> int:
    return sum(x == y for x, y in zip(a, b, strict=True))


def engines_alternating(model, requests: list[Request], batch_size: int, repeats: int) -> dict[bool, tuple[list, list]]:
    """{prefix_reuse: (outputs of the last run, seconds of each run)}, the two engines alternating."""
    runs: dict[bool, tuple[list, list]] = {True: ([], []), False: ([], [])}
    for _ in range(repeats):
        for reuse in (True, False):
            out, seconds = timed(HFEngine(model, batch_size=batch_size, progress=False, prefix_reuse=reuse).generate,
                                 requests)
            runs[reuse] = (out, runs[reuse][1] + [seconds])
    return runs


def spread(seconds: list[float]) -> str:
    return (f"median of {len(seconds)} runs (alternating with the other engine), range "
            f"{min(seconds):.2f}-{max(seconds):.2f} s") if len(seconds) > 1 else "one run"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2", help="a model card name from conf/model")
    parser.add_argument("--prompts", type=int, default=32, help="part 1: prompts")
    parser.add_argument("--max-tokens", type=int, default=64, help="part 1: new tokens per prompt")
    parser.add_argument("--batch-size", type=int, default=32, help="part 1: HF engine batch size")
    parser.add_argument("--repeats", type=int, default=3, help="part 1: runs of each engine (alternating)")
    parser.add_argument("--sweep-prompts", type=int, default=8, help="part 2: prompts (x 100 configurations)")
    parser.add_argument("--sweep-max-tokens", type=int, default=32, help="part 2: new tokens per configuration")
    parser.add_argument("--sweep-batch-size", type=int, default=100, help="part 2: HF engine batch size (rows)")
    parser.add_argument("--loop-calls", type=int, default=48, help="part 2: loop calls timed (a random sample)")
    parser.add_argument("--no-plain", action="store_true", help="skip the HF engine without prefix reuse in part 2")
    parser.add_argument("--no-vllm", action="store_true", help="skip the vLLM engine")
    parser.add_argument("--dtype", default=None, help="override the card's dtype (float32, bfloat16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="generation", help="results/bench/<name>.{json,md}")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process: one process, one timing

    overrides = [f"model={args.model}"] + ([f"model.dtype={args.dtype}"] if args.dtype else [])
    cfg = config.compose(overrides)
    model = instantiate(cfg.model)
    model.hf  # load once, outside the timings
    rows: list[dict] = []
    summary: dict[str, Any] = {"model": model.name, "dtype": model.dtype}

    # --- part 1: greedy, per-prompt loop vs batched HF engine (with and without prefix reuse) vs vLLM ---------
    behaviors = AdvBench(data_dir=str(DATA), limit=args.prompts).load()
    sampling = Sampling(max_tokens=args.max_tokens)
    requests = [Request(behavior_id=b.id, messages=(Message(role="user", content=b.query()),), sampling=sampling) for b in behaviors]
    HFEngine(model, batch_size=args.batch_size, progress=False).generate(requests[:2])  # warm-up
    runs = engines_alternating(model, requests, args.batch_size, args.repeats)
    loop_timed = [timed(loop_call, model, r) for r in requests]
    loop = [out for out, _ in loop_timed]
    per_prompt = [seconds for _, seconds in loop_timed]
    loop_s = sum(per_prompt)
    mean, low, high = mean_interval(per_prompt)
    loop_interval = (low * len(requests), high * len(requests))
    texts = [text for text, _ in loop]
    rows.append(row("greedy", "per-prompt generate loop", loop_s, sum(n for _, n in loop), len(requests), None,
                    f"{mean:.3f} s/prompt, 95 % interval of the mean {low:.3f}-{high:.3f} (n = {len(requests)})"))
    greedy_same: dict[str, str] = {}
    for reuse, label in ((False, "HF engine, every prompt encoded on its own (before)"),
                         (True, "HF engine, encode once (common prefix once, each prompt once)")):
        out, seconds = runs[reuse]
        same = identical([c.text for c in out], texts)
        greedy_same["hf" if reuse else "hf_plain"] = f"{same}/{len(requests)}"
        rows.append(row("greedy", f"{label}, batch {args.batch_size}", statistics.median(seconds),
                        sum(c.completion_tokens for c in out), math.ceil(len(requests) / args.batch_size), loop_s,
                        f"{spread(seconds)}; greedy outputs identical to the loop: {same}/{len(requests)}", loop_interval))

    # --- part 2: the decoding sweep ---------------------------------------------------------------
    attack = DecodingAttack(**instantiate_attack_config())
    sweep_behaviors = AdvBench(data_dir=str(DATA), limit=args.sweep_prompts).load()
    sweep_requests = attack.requests(sweep_behaviors, model, Sampling(max_tokens=args.sweep_max_tokens, seed=args.seed))
    configs = len(sweep_requests) // len(sweep_behaviors)
    distinct = len({tuple(model.prompt_ids(r.messages, r.prefill)) for r in sweep_requests})
    sweep, sweep_s = timed(HFEngine(model, batch_size=args.sweep_batch_size, progress=False).generate, sweep_requests)
    plain, plain_s = (None, None) if args.no_plain else timed(
        HFEngine(model, batch_size=args.sweep_batch_size, progress=False, prefix_reuse=False).generate, sweep_requests)
    calls = len(sweep_requests)
    sample = random.Random(args.seed).sample(range(calls), min(args.loop_calls, calls))
    per_call, loop_tokens, loop_text = [], 0, {}
    for i in sample:
        (text, n), seconds = timed(loop_call, model, sweep_requests[i])
        per_call.append(seconds)
        loop_tokens += n
        loop_text[i] = text
    greedy_configs = [i for i, r in enumerate(sweep_requests) if r.sampling.greedy]
    for i in greedy_configs:  # every greedy configuration through the loop (untimed beyond the sample)
        if i not in loop_text:
            loop_text[i] = loop_call(model, sweep_requests[i])[0]
    by_key = {c.request.key: c.text for c in sweep}
    sweep_same = identical([by_key[sweep_requests[i].key] for i in greedy_configs], [loop_text[i] for i in greedy_configs])
    mean, low, high = mean_interval(per_call)
    loop_total, sweep_interval = mean * calls, (low * calls, high * calls)
    loop_tokens_total = loop_tokens / len(sample) * calls
    rows.append(row("decoding sweep", "reference loop (one generate per prompt x configuration), extrapolated",
                    loop_total, round(loop_tokens_total), calls, None,
                    f"EXTRAPOLATED: {len(sample)} of {calls} calls timed (random sample), {mean:.3f} s/call "
                    f"(95 % interval of the mean {low:.3f}-{high:.3f}) x {calls} calls; tokens likewise"))
    if plain is not None:
        plain_key = {c.request.key: c.text for c in plain}
        same_plain = identical([plain_key[sweep_requests[i].key] for i in greedy_configs],
                               [loop_text[i] for i in greedy_configs])
        rows.append(row("decoding sweep", f"HF engine, every row encoded on its own (before), batch {args.sweep_batch_size}",
                        plain_s, sum(c.completion_tokens for c in plain), math.ceil(calls / args.sweep_batch_size),
                        loop_total, f"one run; greedy configurations identical to the loop's: {same_plain}/"
                                    f"{len(greedy_configs)}", sweep_interval))
    rows.append(row("decoding sweep", f"HF engine, encode once ({distinct} distinct prompts for {calls} requests), "
                                      f"batch {args.sweep_batch_size}",
                    sweep_s, sum(c.completion_tokens for c in sweep), math.ceil(calls / args.sweep_batch_size), loop_total,
                    f"one run; greedy configurations identical to the loop's: {sweep_same}/{len(greedy_configs)}",
                    sweep_interval))
    summary.update({
        "greedy": {"prompts": len(requests), "max_tokens": args.max_tokens, "repeats": args.repeats,
                   "loop_seconds": loop_s, "identical_greedy_outputs": greedy_same},
        "decoding_sweep": {"prompts": len(sweep_behaviors), "configurations_per_prompt": configs, "calls": calls,
                           "distinct_prompts": distinct, "max_tokens": args.sweep_max_tokens,
                           "loop_calls_timed": len(sample), "loop_seconds_extrapolated": loop_total,
                           "loop_seconds_95": list(sweep_interval), "sweep_seconds_hf": sweep_s,
                           "sweep_seconds_hf_plain": plain_s,
                           "identical_greedy_configurations_hf": f"{sweep_same}/{len(greedy_configs)}"},
    })
    report(args, rows, summary, "pending (the bench stopped before vLLM ran)")

    # --- vLLM (last: it binds OpenMP threads for the rest of the process) --------------------------
    vllm_note = "skipped (--no-vllm)"
    if not args.no_vllm:
        engine, startup = vllm_engine(model, args)
        if engine is None:
            vllm_note = startup
        else:
            vllm_note = f"vLLM engine start-up {startup:.1f} s (not in the timings)"
            try:
                engine.generate(requests[:2])  # warm-up
                out, seconds = timed(engine.generate, requests)
                same = identical([c.text for c in out], texts)
                rows.append(row("greedy", "vLLM engine (all requests, prefix caching)", seconds,
                                sum(c.completion_tokens for c in out), 1, loop_s,
                                f"one run; greedy outputs identical to the loop: {same}/{len(requests)}", loop_interval))
                out, seconds = timed(engine.generate, sweep_requests)
                by_key = {c.request.key: c.text for c in out}
                same = identical([by_key[sweep_requests[i].key] for i in greedy_configs],
                                 [loop_text[i] for i in greedy_configs])
                rows.append(row("decoding sweep", f"vLLM engine, all {calls} requests at once (prefix caching, "
                                                  f"block {engine.cpu_block_size} on CPU)", seconds,
                                sum(c.completion_tokens for c in out), 1, loop_total,
                                f"one run; greedy configurations identical to the loop's: {same}/{len(greedy_configs)}",
                                sweep_interval))
            except Exception as exc:  # noqa: BLE001 - recorded, the HF figures stand
                vllm_note += f"; failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            engine.close()
    if not any(r["method"].startswith("vLLM") for r in rows):
        rows.append({"part": "greedy", "method": "vLLM engine", "note": vllm_note})
    path = report(args, rows, summary, vllm_note)
    print(path.read_text())


def report(args, rows: list[dict], summary: dict[str, Any], vllm_note: str):
    """Write results/bench/<name>.{json,md} (also before vLLM runs, so a crash there loses nothing)."""

    def ratio(part: str, prefix: str) -> dict[str, float] | None:
        match = [r for r in rows if r["part"] == part and r["method"].startswith(prefix) and "seconds" in r]
        if not match:
            return None
        r = match[0]
        return {"ratio": r["speedup_vs_loop"], "low_95": r["speedup_95_low"], "high_95": r["speedup_95_high"]}

    summary = {**summary, "vllm": vllm_note}
    summary["greedy"] = {**summary["greedy"],
                         "hf_engine_speedup_vs_loop": ratio("greedy", "HF engine, encode once"),
                         "hf_engine_before_speedup_vs_loop": ratio("greedy", "HF engine, every"),
                         "vllm_speedup_vs_loop": ratio("greedy", "vLLM")}
    summary["decoding_sweep"] = {**summary["decoding_sweep"],
                                 "hf_sweep_speedup_vs_loop": ratio("decoding sweep", "HF engine, encode once"),
                                 "hf_sweep_before_speedup_vs_loop": ratio("decoding sweep", "HF engine, every"),
                                 "vllm_sweep_speedup_vs_loop": ratio("decoding sweep", "vLLM")}
    paragraphs = __doc__.split("\n\n")[:2]
    notes = "\n\n".join(p.replace("\n", " ") for p in paragraphs)
    return write(args.name, rows, summary, notes=notes)


def instantiate_attack_config() -> dict:
    """The default decoding grid, read from conf/attack/decoding.yaml (the CLI's own)."""
    import yaml

    cfg = yaml.safe_load((ROOT / "conf" / "attack" / "decoding.yaml").read_text())
    cfg.pop("_target_")
    return cfg


if __name__ == "__main__":
    main()
