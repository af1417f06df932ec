"""Generation speed: the per-prompt `generate` loop research code uses vs the batched HF engine
vs the vLLM engine, and the decoding-attack sweep as one batched generation vs the
reference implementation's loop (one `generate` call per prompt per configuration).

Part 1, greedy: same model, same prompts (AdvBench), same max tokens, measured in one run;
tokens/s of each and the ratio to the loop; greedy outputs compared with the loop's.
Part 2, the decoding sweep (attack=decoding, its full default grid: greedy, 20 temperatures,
20 top-p, 9 top-k values, each with and without the system prompt = 100 configurations per
prompt): the harness's sweep (all requests to the engine at once, per-row sampling) against
the reference loop. The loop is timed on a random sample of (prompt, configuration) calls and
extrapolated as mean seconds per call x number of calls (with the sample's standard error);
the output says so. vLLM (engine=vllm) is measured when it imports, else recorded as not
installed. Writes results/bench/generation.{json,md}.

    python bench/generation.py                       # embedded SmolLM2 (CPU: ~15 min)
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


def vllm_engine(model, args):
    """The vLLM engine and its start-up seconds, or (None, reason) when it cannot run here."""
    try:
        from harness.engine.vllm import VLLMEngine

        engine = VLLMEngine(model, enforce_eager=True, progress=False)
        _, startup = timed(lambda: engine.llm)
        return engine, startup
    except Exception as exc:  # noqa: BLE001 - the bench records why, whatever it is
        return None, f"not installed or not runnable here: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def row(part: str, method: str, seconds: float, tokens: int, calls: int, baseline: float | None, note: str = "") -> dict:
    return {"part": part, "method": method, "seconds": seconds, "calls": calls, "tokens": tokens,
            "tokens_per_s": tokens / seconds if seconds else float("nan"),
            "speedup_vs_loop": baseline / seconds if baseline else 1.0, "note": note}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2", help="a model card name from conf/model")
    parser.add_argument("--prompts", type=int, default=32, help="part 1: prompts")
    parser.add_argument("--max-tokens", type=int, default=64, help="part 1: new tokens per prompt")
    parser.add_argument("--batch-size", type=int, default=32, help="part 1: HF engine batch size")
    parser.add_argument("--sweep-prompts", type=int, default=8, help="part 2: prompts (x 100 configurations)")
    parser.add_argument("--sweep-max-tokens", type=int, default=32, help="part 2: new tokens per configuration")
    parser.add_argument("--sweep-batch-size", type=int, default=100, help="part 2: HF engine batch size (rows)")
    parser.add_argument("--loop-calls", type=int, default=48, help="part 2: loop calls timed (a random sample)")
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

    # --- part 1: greedy, per-prompt loop vs batched HF engine vs vLLM ----------------------------
    behaviors = AdvBench(data_dir=str(DATA), limit=args.prompts).load()
    sampling = Sampling(max_tokens=args.max_tokens)
    requests = [Request(behavior_id=b.id, messages=(Message(role="user", content=b.query()),), sampling=sampling) for b in behaviors]
    hf_engine = HFEngine(model, batch_size=args.batch_size, progress=False)
    hf_engine.generate(requests[:2])  # warm-up
    batched, batched_s = timed(hf_engine.generate, requests)
    loop, loop_s = timed(lambda: [loop_call(model, r) for r in requests])
    same_hf = sum(c.text == text for c, (text, _) in zip(batched, loop, strict=True))
    rows.append(row("greedy", "per-prompt generate loop", loop_s, sum(n for _, n in loop), len(requests), None))
    rows.append(row("greedy", f"HF engine (batch {args.batch_size}, length-sorted)", batched_s,
                    sum(c.completion_tokens for c in batched), math.ceil(len(requests) / args.batch_size), loop_s,
                    f"greedy outputs identical to the loop: {same_hf}/{len(requests)}"))

    # --- part 2: the decoding sweep ---------------------------------------------------------------
    attack = DecodingAttack(**{k: v for k, v in instantiate_attack_config().items()})
    sweep_behaviors = AdvBench(data_dir=str(DATA), limit=args.sweep_prompts).load()
    sweep_requests = attack.requests(sweep_behaviors, model, Sampling(max_tokens=args.sweep_max_tokens, seed=args.seed))
    configs = len(sweep_requests) // len(sweep_behaviors)
    sweep_engine = HFEngine(model, batch_size=args.sweep_batch_size, progress=False)
    sweep, sweep_s = timed(sweep_engine.generate, sweep_requests)
    sweep_tokens = sum(c.completion_tokens for c in sweep)
    sample = random.Random(args.seed).sample(range(len(sweep_requests)), min(args.loop_calls, len(sweep_requests)))
    per_call, loop_tokens, greedy_same, greedy_seen = [], 0, 0, 0
    by_key = {c.request.key: c for c in sweep}
    for i in sample:
        (text, n), seconds = timed(loop_call, model, sweep_requests[i])
        per_call.append(seconds)
        loop_tokens += n
        if sweep_requests[i].sampling.greedy:
            greedy_seen += 1
            greedy_same += by_key[sweep_requests[i].key].text == text
    mean = statistics.fmean(per_call)
    stderr = statistics.stdev(per_call) / math.sqrt(len(per_call)) if len(per_call) > 1 else float("nan")
    calls = len(sweep_requests)
    loop_total = mean * calls
    loop_tokens_total = loop_tokens / len(sample) * calls
    rows.append(row("decoding sweep", "reference loop (one generate per prompt x configuration), extrapolated",
                    loop_total, round(loop_tokens_total), calls, None,
                    f"EXTRAPOLATED: {len(sample)} of {calls} calls timed (random sample), {mean:.3f} s/call "
                    f"(+-{stderr:.3f} standard error) x {calls} calls; tokens likewise"))
    rows.append(row("decoding sweep", f"harness sweep: HF engine, all {calls} requests at once (batch {args.sweep_batch_size} rows)",
                    sweep_s, sweep_tokens, math.ceil(calls / args.sweep_batch_size), loop_total,
                    f"greedy configurations identical to the loop's: {greedy_same}/{greedy_seen} sampled"))

    report(args, model, rows, requests, same_hf, sweep_behaviors, configs, calls, sample, loop_total, stderr,
           sweep_s, "pending (the bench stopped before vLLM ran)")

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
                same = sum(c.text == text for c, (text, _) in zip(out, loop, strict=True))
                rows.append(row("greedy", "vLLM engine (all requests, prefix caching)", seconds,
                                sum(c.completion_tokens for c in out), 1, loop_s,
                                f"greedy outputs identical to the loop: {same}/{len(requests)}"))
                out, seconds = timed(engine.generate, sweep_requests)
                rows.append(row("decoding sweep", f"harness sweep: vLLM engine, all {calls} requests at once", seconds,
                                sum(c.completion_tokens for c in out), 1, loop_total))
            except Exception as exc:  # noqa: BLE001 - recorded, the HF figures stand
                vllm_note += f"; failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            engine.close()
    if not any(r["method"].startswith("vLLM") for r in rows):
        rows.append({"part": "greedy", "method": "vLLM engine", "note": vllm_note})
    path = report(args, model, rows, requests, same_hf, sweep_behaviors, configs, calls, sample, loop_total, stderr,
                  sweep_s, vllm_note)
    print(path.read_text())


def report(args, model, rows, requests, same_hf, sweep_behaviors, configs, calls, sample, loop_total, stderr,
           sweep_s, vllm_note):
    """Write results/bench/<name>.{json,md} (also before vLLM runs, so a crash there loses nothing)."""

    def ratio(part: str, prefix: str) -> float | None:
        match = [r for r in rows if r["part"] == part and r["method"].startswith(prefix) and "seconds" in r]
        return match[0]["speedup_vs_loop"] if match else None

    summary = {
        "model": model.name, "dtype": model.dtype,
        "greedy": {"prompts": len(requests), "max_tokens": args.max_tokens,
                   "hf_engine_speedup_vs_loop": ratio("greedy", "HF engine"),
                   "vllm_speedup_vs_loop": ratio("greedy", "vLLM"),
                   "identical_greedy_outputs_hf": f"{same_hf}/{len(requests)}"},
        "decoding_sweep": {"prompts": len(sweep_behaviors), "configurations_per_prompt": configs, "calls": calls,
                           "max_tokens": args.sweep_max_tokens, "loop_calls_timed": len(sample),
                           "loop_seconds_extrapolated": loop_total,
                           "loop_seconds_stderr": stderr * calls,
                           "sweep_seconds_hf": sweep_s,
                           "hf_sweep_speedup_vs_loop": ratio("decoding sweep", "harness sweep: HF"),
                           "vllm_sweep_speedup_vs_loop": ratio("decoding sweep", "harness sweep: vLLM")},
        "vllm": vllm_note,
    }
    first, second = __doc__.split("\n\n")[:2]
    notes = first.replace("\n", " ") + "\n\n" + second.replace("\n", " ")
    return write(args.name, rows, summary, notes=notes)


def instantiate_attack_config() -> dict:
    """The default decoding grid, read from conf/attack/decoding.yaml (the CLI's own)."""
    import yaml

    cfg = yaml.safe_load((ROOT / "conf" / "attack" / "decoding.yaml").read_text())
    cfg.pop("_target_")
    return cfg


if __name__ == "__main__":
    main()
