"""The GPU-only paths in one run of a few minutes, for a user with an NVIDIA GPU:

1. bf16 training: the default aligned model (defense=safety_sft on the embedded SmolLM2; bf16 autocast is
   on by default on GPUs), trained from a fresh model cache (GGUF conversion, answer sampling, training);
2. vLLM on CUDA: the default prefill attack through engine=vllm and engine=hf, greedy outputs compared;
3. engine=auto picks vLLM when both a CUDA GPU and vllm are present;
4. GCG at the reference width (512 candidates, top-k 256) on the aligned model, a few steps.

Every step is the ordinary CLI (`python -m harness ...`) in a subprocess. Writes results/bench/gpu_smoke.{json,md}.

    pip install vllm            # optional: without it step 2 and 3 are reported as skipped
    python bench/gpu_smoke.py   # --gcg-steps 20 --limit 50
Without a CUDA GPU it exits at once (status 2) and says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA, ROOT, write

NO_GPU = ("gpu_smoke: no CUDA GPU visible (torch.cuda.is_available() is False). This script checks the GPU-only "
          "paths (bf16 training, vLLM on CUDA, GCG at the reference width); run it on a machine with an NVIDIA GPU "
          "and a CUDA build of torch. The CPU paths are covered by the test suite (python -m pytest).")


def harness(*args: str, cache: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "HARNESS_CACHE_DIR": str(cache), "TQDM_DISABLE": "1", "HARNESS_DATA_DIR": str(DATA)}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=False)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"gpu_smoke: `python -m harness {' '.join(args)}` failed:\n{out.stderr[-3000:]}")
    return seconds, out


def texts(folder: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    return {f"{r['completion']['request']['behavior_id']}:{r['completion']['request'].get('prefill', '')}":
            r["completion"]["text"] for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=50, help="AdvBench behaviors for the generation steps")
    parser.add_argument("--gcg-steps", type=int, default=20)
    parser.add_argument("--gcg-behaviors", type=int, default=2)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        sys.exit(2)
    rows, has_vllm = [], importlib.util.find_spec("vllm") is not None
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as tmp:
        cache, runs = Path(tmp) / "cache", Path(tmp) / "runs"
        seconds, _ = harness("model=smollm2-aligned", "attack=direct", f"limit={args.limit}", "engine=hf",
                             f"out_dir={runs}/train", cache=cache)
        (log_file,) = cache.glob("models/smollm2-aligned-*/train_log.json")
        train = json.loads(log_file.read_text())
        losses = [h["loss"] for h in train["history"]]
        rows.append({"step": "bf16 training (fresh cache: conversion, answers, safety SFT, direct eval)",
                     "seconds": seconds, "detail": f"{train['steps']} steps in {train['seconds']:.0f} s, loss "
                     f"{losses[0]:.3f} -> {losses[-1]:.3f}, bf16={train['settings']['bf16']} (null = on for GPUs)",
                     "ok": losses[-1] < losses[0]})
        common = ("model=smollm2-aligned", "attack=prefill", f"limit={args.limit}")
        hf_s, _ = harness(*common, "engine=hf", f"out_dir={runs}/hf", cache=cache)
        rows.append({"step": "HF engine, prefill attack", "seconds": hf_s, "detail": "", "ok": True})
        if has_vllm:
            vllm_s, _ = harness(*common, "engine=vllm", f"out_dir={runs}/vllm", cache=cache)
            a, b = texts(runs / "hf"), texts(runs / "vllm")
            same = sum(a[k] == b.get(k) for k in a)
            rows.append({"step": "vLLM engine on CUDA, prefill attack", "seconds": vllm_s,
                         "detail": f"{same}/{len(a)} greedy outputs identical to HF; {hf_s / vllm_s:.1f}x HF's wall time "
                         "(both include start-up)", "ok": same >= 0.9 * len(a)})  # GPU kernels may flip a near-tie
            harness("model=smollm2-aligned", "attack=direct", "limit=2", f"out_dir={runs}/auto", cache=cache)
            chose = "engine=auto: vllm" in (runs / "auto" / "harness.log").read_text()
            rows.append({"step": "engine=auto", "seconds": float("nan"), "detail": "chose vllm" if chose else "did not choose vllm",
                         "ok": chose})
        else:
            rows.append({"step": "vLLM engine on CUDA", "seconds": float("nan"), "detail": "skipped: pip install vllm",
                         "ok": None})
        gcg_s, _ = harness("model=smollm2-aligned", "attack=gcg", f"limit={args.gcg_behaviors}",
                           f"attack.steps={args.gcg_steps}", "attack.search_width=512", "attack.topk=256", "engine=hf",
                           f"out_dir={runs}/gcg", cache=cache)
        rows.append({"step": f"GCG width 512 / top-k 256, {args.gcg_behaviors} behaviors x {args.gcg_steps} steps",
                     "seconds": gcg_s, "detail": f"{gcg_s / (args.gcg_behaviors * args.gcg_steps):.2f} s per step "
                     "(incl. start-up and evaluation)", "ok": True})
    ok = all(r["ok"] is not False for r in rows)
    path = write("gpu_smoke", rows, {"ok": ok, "gpu": torch.cuda.get_device_name(0), "vllm": has_vllm},
                 notes="GPU-only paths, each through the CLI from a fresh model cache (bench/gpu_smoke.py).")
    print(path.read_text())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
