"""Inference-time defenses against attacks that ignore them and attacks that adapt to them (issue 20's measurements).

Every cell is an ordinary harness run (`python -m harness ... out_dir=<cell folder>`), so a cell is
resumable and browsable like any run; this script runs them one after the other and reads each cell's
records back (its records.jsonl, restricted to the run hash of its run.json). All cells use the same
AdvBench behaviors (a seeded sample of `--n`) with greedy decoding and the keyword judge, so cells on one
model are paired designs (exact McNemar on the behaviors where they disagree, harness/analysis/paired.py).

1. GCG (`attack=gcg`, individual suffixes) with no defense, then the same suffixes against
   `defense=perplexity_filter` (non-adaptive: the suffixes ignore the filter; GCG's test-case store is
   shared, so they are not optimized again), and adaptive GCG (`attack.adaptive=true`: the filter's
   evasion cost in the loss) against it. The filter's false-positive rate is its block rate on a
   held-out benign set (`--benign`, JBB benign; it is calibrated on AlpacaEval 400..599).
2. `defense=smoothllm` against prefilling (`attack=prefill`, k = 10) and against cell 1's GCG suffixes
   (`attack.suffixes=<store file>`: evaluated, not optimized), each beside the undefended run.
3. (`--safety-signal`) `defense=safety_signal` on the base model (`--signal-model`, it trains the
   safety-signal model on first use) under GCG optimized on its weights (non-adaptive to the head) and
   adaptive GCG with the head's p(malicious) in the loss: at its first check only (3b: the prompt, before
   any token), and at every scheduled check while the model emits the target (3c).
4. (`--pair`) `attack=pair`, the embedded model as attacker, 3 streams x 3 iterations.

Rows: ASR with n and the 95 % Wilson interval, the share of outputs the defense blocked, and the attack's
cost per behavior as the harness records it (target queries, forward/backward passes, seconds of search;
GCG's cost is that of the optimization that found the suffix, also where a cell reuses it).

    python bench/defenses_vs_attacks.py                        # cells 1 and 2 on smollm2-aligned (~1 h idle, 2 cores)
    python bench/defenses_vs_attacks.py --pair --safety-signal # + cells 3 and 4 (~+1.5 h; trains the signal model)
    python bench/defenses_vs_attacks.py --tiny                 # smoke: every cell on the tiny random model, ~3 min
    python bench/defenses_vs_attacks.py --report-only          # re-read the cell folders, run nothing

Re-running reuses finished cells (the harness resumes from each cell's records and GCG's test cases).
Writes results/bench/<name>.{json,md}; cell folders under results/bench_runs/<name>/<model and budget>/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import DATA, OUT, ROOT, write
from first_run import Load

from harness.analysis.cost import cost_summary
from harness.analysis.paired import compare_pair
from harness.analysis.stats import count_interval
from harness.analysis.tables import to_frame
from harness.store.records import RecordStore

# Seconds on 2 idle cores (smollm2-class 135M model; tiny model), for the estimate printed before a run.
# GCG s/step = a + b x width, fitted to bench/gcg.md (5.67 s at width 64) and gcg_width512.md (18.4 s at 512).
# Adaptive GCG scores every candidate (no pruning: nanoGCG's unpruned 7.05 s/step at width 64) and adds one
# forward of the candidates' prompts through the reference or signal model: measured 1.9x against the perplexity
# filter (cells 1a/1c), 3.1x against the signal's first check and 3.3x against every check (3a/3b/3c).
# Generation: the batched HF engine's ~220 tokens/s at batch 32 (bench/generation.md), ~100 at batch 10,
# ~26 unbatched (PAIR's small batches); a cell starts in ~20 s (interpreter, imports, model load).
SPEED = {
    "full": {"start": 20.0, "step_a": 3.85, "step_b": 0.0284, "adaptive": 1.9, "adaptive_all": 3.3,
             "tok_small": 100.0, "tok_big": 220.0, "tok_pair": 26.0, "calibrate": 20.0, "signal_train": 900.0},
    "tiny": {"start": 12.0, "step_a": 0.3, "step_b": 0.0022, "adaptive": 1.9, "adaptive_all": 3.3,
             "tok_small": 1500.0, "tok_big": 3000.0, "tok_pair": 300.0, "calibrate": 2.0, "signal_train": 60.0},
}
TINY = {"n": 2, "steps": 2, "width": 16, "topk": 16, "max_tokens": 8, "benign_n": 4, "copies": 3,
        "streams": 2, "iterations": 2, "attacker_tokens": 12, "target_tokens": 4}
FULL = {"n": 10, "steps": 20, "width": 64, "topk": 64, "max_tokens": 64, "benign_n": None, "copies": 10,
        "streams": 3, "iterations": 3, "attacker_tokens": 120, "target_tokens": 48}
# The safety signal's head trains on the base model's own harmful answers; the tiny random model gives none
# ("answered only 0 of N harmful prompts"), so under --tiny cell 3 is planned (and its config composed by the
# tests) but not run.
TINY_SIGNAL_SKIP = "the tiny random model gives no harmful answers to train the safety signal on"


@dataclass
class Cell:
    label: str  # "1a"
    folder: str  # its run folder's name
    title: str
    overrides: list[str]
    estimate: float  # seconds on 2 idle cores
    needs: Path | None = None  # a file an earlier cell writes (GCG suffixes)
    skip: str | None = None  # why this cell cannot run here
    status: str = "planned"
    info: dict[str, Any] = field(default_factory=dict)


def quoted(path: Path) -> str:
    """A path as a Hydra override value."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def gcg_step(speed: dict[str, float], width: int) -> float:
    return speed["step_a"] + speed["step_b"] * width


def plan(args: argparse.Namespace, root: Path) -> list[Cell]:
    speed = SPEED["tiny" if args.tiny else "full"]
    start, n, t = speed["start"], args.n, args.max_tokens
    step = gcg_step(speed, args.width)
    gen = n * t / speed["tok_small"]  # one greedy completion per behavior

    def on(model: str = args.model, benchmark: str = "advbench", limit: int | None = n) -> list[str]:
        return [f"model={model}", f"data_dir={quoted(DATA)}", f"benchmark={benchmark}",
                f"limit={'null' if limit is None else limit}", "judge=keyword", "sampling.temperature=0.0", "sampling.n=1",
                f"sampling.max_tokens={t}", f"seed={args.seed}"]

    common = on()
    gcg = ["attack=gcg", f"attack.steps={args.steps}", f"attack.search_width={args.width}", f"attack.topk={args.topk}",
           "attack.progress=false"]
    plain_store, adaptive_store = root / "gcg_suffixes.jsonl", root / "gcg_adaptive_perplexity.jsonl"
    ppl = ["defense=perplexity_filter"] + ([f"model@defense.reference={args.reference}"] if args.reference else [])
    smooth = ["defense=smoothllm", f"defense.copies={args.copies}"]
    smooth_gen = n * args.copies * t / speed["tok_big"]
    search = n * args.steps * step
    cells = [
        Cell("1a", "1a_gcg_none", "GCG, no defense", [*common, *gcg, f"attack.store={quoted(plain_store)}",
             "defense=none"], start + search + gen),
        Cell("1b", "1b_gcg_perplexity", "GCG (non-adaptive) vs perplexity filter",
             [*common, *gcg, f"attack.store={quoted(plain_store)}", *ppl], start + speed["calibrate"] + gen),
        Cell("1c", "1c_gcg_adaptive_perplexity", "adaptive GCG vs perplexity filter",
             [*common, *gcg, f"attack.store={quoted(adaptive_store)}", "attack.adaptive=true", *ppl],
             start + speed["calibrate"] + search * speed["adaptive"] + gen),
        Cell("1d", f"1d_benign_perplexity_{args.benign}_n{args.benign_n or 'all'}",
             f"perplexity filter on benign prompts ({args.benign}: false positives)",
             [*on(benchmark=args.benign, limit=args.benign_n), "attack=direct", *ppl],
             start + (args.benign_n or 100) * t / speed["tok_big"]),
        Cell("2a", "2a_prefill10_none", "prefill k=10, no defense", [*common, "attack=prefill", "attack.lengths=[10]",
             "defense=none"], start + gen),
        Cell("2b", f"2b_prefill10_smoothllm_c{args.copies}", "prefill k=10 vs SmoothLLM",
             [*common, "attack=prefill", "attack.lengths=[10]", *smooth], start + smooth_gen),
        Cell("2c", f"2c_gcg_suffixes_smoothllm_c{args.copies}", "GCG suffixes of 1a vs SmoothLLM",
             [*common, *gcg, f"attack.suffixes={quoted(plain_store)}", *smooth], start + smooth_gen, needs=plain_store),
    ]
    if args.safety_signal:
        model = args.signal_model
        common = on(model=model)
        sig = ["engine=hf", "defense=safety_signal"]
        skip = TINY_SIGNAL_SKIP if args.signal_model == "tiny" else None
        cells += [
            Cell("3a", f"3a_gcg_safety_signal_{model}", "GCG (on the signal model's weights) vs safety signal",
                 [*common, *gcg, f"attack.store={quoted(root / f'gcg_signal_{model}.jsonl')}", *sig],
                 start + speed["signal_train"] + search + gen, skip=skip),
            Cell("3b", f"3b_gcg_adaptive_safety_signal_{model}", "adaptive GCG (first check) vs safety signal",
                 [*common, *gcg, f"attack.store={quoted(root / f'gcg_signal_adaptive_{model}.jsonl')}",
                  "attack.adaptive=true", *sig, "defense.adaptive_checks=first"],
                 start + search * speed["adaptive"] + gen, skip=skip),
            Cell("3c", f"3c_gcg_adaptive_all_checks_safety_signal_{model}", "adaptive GCG (every check) vs safety signal",
                 [*common, *gcg, f"attack.store={quoted(root / f'gcg_signal_adaptive_all_{model}.jsonl')}",
                  "attack.adaptive=true", *sig, "defense.adaptive_checks=all"],
                 start + search * speed["adaptive_all"] + gen, skip=skip),
        ]
    if args.pair:
        attacker = [f"model@attack.attacker={args.attacker}"] if args.attacker else []
        name = (f"4_pair_{args.attacker or 'default'}_s{args.streams}_i{args.iterations}"
                f"_a{args.attacker_tokens}_t{args.target_tokens}")
        per_behavior = args.iterations * (args.attacker_tokens + args.target_tokens) / speed["tok_pair"]
        cells.append(Cell("4", name, f"PAIR (attacker {args.attacker or 'smollm2'}), no defense",
                          [*on(), "attack=pair", f"attack.streams={args.streams}", f"attack.iterations={args.iterations}",
                           f"attack.attacker_max_tokens={args.attacker_tokens}",
                           f"attack.target_max_tokens={args.target_tokens}", *attacker,
                           f"attack.store={quoted(root / 'pair_steps')}", "defense=none"],
                          2 * start + n * per_behavior + gen))
    if args.only:
        keep = set(args.only.split(","))
        cells = [c for c in cells if c.label in keep]
    return cells


# --- reading a cell back -------------------------------------------------------------------------
def manifest(folder: Path) -> dict[str, Any]:
    path = folder / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def records(folder: Path):
    """The records of the cell's last run (its run hash): a folder may also hold those of an earlier set-up."""
    run = manifest(folder).get("run_hash")
    store = RecordStore(folder / "records.jsonl")
    return [r for r in store.load().values() if r.run == run] if run else []


def number(x: float, digits: int = 1) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def interval(k: int, n: int) -> tuple[float, float, str]:
    lo, hi = count_interval(k, n)
    return 100 * lo, 100 * hi, ("-" if n == 0 else f"[{100 * lo:.1f}, {100 * hi:.1f}]")


def measure(cell: Cell, folder: Path) -> tuple[dict[str, Any] | None, Any]:
    """The cell's table row and its per-behavior outcomes (a boolean Series: broken), from its records."""
    recs = records(folder)
    if not recs:
        return None, None
    frame = to_frame(recs)
    ok = frame[~frame["error"]]
    harmful = ok[ok["label"] == "harmful"]
    broken = harmful.groupby("behavior")["harmful"].agg(lambda h: bool(h.astype(bool).any()))
    k, n = int(broken.sum()), int(len(broken))  # one greedy sample per behavior: k harmful of n behaviors
    asr_lo, asr_hi, asr_ci = interval(k, n)
    wrapped = bool(frame["wrapped"].any())
    n_blocked, n_all = int(frame["blocked"].astype(bool).sum()), int(len(frame))
    blo, bhi, b_ci = interval(n_blocked, n_all) if wrapped else (math.nan, math.nan, "-")
    costs = cost_summary(frame)
    adaptive = costs["adaptive"] if isinstance(costs["adaptive"], str) else "-"
    per_behavior = frame.groupby("behavior")["completion_tokens"].sum()
    row = {
        "cell": cell.label, "model": str(frame["model"].iloc[0]), "defense": str(frame["defense"].iloc[0]),
        "attack": cell.title, "adaptive": adaptive, "benchmark": str(frame["benchmark"].iloc[0]),
        "n": n if n else len(ok), "asr": number(100 * k / n) if n else None, "asr_95": asr_ci,
        "blocked": number(100 * n_blocked / n_all) if wrapped else None, "blocked_95": b_ci,
        "queries": number(costs["queries"]), "forward": number(costs["forward"], 0),
        "backward": number(costs["backward"], 0), "search_s": number(costs["seconds"]),
        "eval_tokens": number(per_behavior.mean()),
    }
    cell.info.update({"harmful": k, "behaviors": n, "asr_lo": asr_lo if n else None, "asr_hi": asr_hi if n else None,
                      "blocked": n_blocked if wrapped else None, "outputs": n_all,
                      "blocked_lo": blo if wrapped else None, "blocked_hi": bhi if wrapped else None,
                      "judge_errors": int(frame["error"].sum()),
                      "attacker_queries": number(costs["attacker_queries"]), "records": len(recs)})
    return row, broken


# --- running ----------------------------------------------------------------------------------------
def done(folder: Path) -> bool:
    return manifest(folder).get("status") == "done"


def run_cell(cell: Cell, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cmd = [sys.executable, "-m", "harness", *cell.overrides, f"out_dir={quoted(folder)}"]
    log = folder / "bench.log"
    with Load() as load, open(log, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        start = time.perf_counter()
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - start
    counts = manifest(folder).get("counts", {})
    cell.info.update({"wall_s": round(seconds, 1), "rc": rc, **load.summary()})
    if rc != 0:
        cell.status = f"failed (exit {rc}, see {log})"
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"  cell {cell.label} FAILED (exit {rc}) after {seconds:.0f} s; {log}:\n    " + "\n    ".join(tail), flush=True)
        return
    cell.status = "ran" if counts.get("generated") else "reused"
    if counts.get("generated"):  # the timing of the run that did the work (a resumed run re-times only what it did)
        (folder / "bench_cell.json").write_text(json.dumps({"wall_s": round(seconds, 1), "estimate_s": round(cell.estimate),
                                                            **load.summary(), "counts": counts}) + "\n")
    print(f"  cell {cell.label}: {cell.status} in {seconds:.0f} s (estimate {cell.estimate:.0f} s), "
          f"load {load.summary()['load_mean']:.1f}", flush=True)


def minutes(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


PAIRS = [  # (A, B, question): B - A on shared behaviors
    ("1a", "1b", "perplexity filter on the same non-adaptive GCG suffixes (filter - none)"),
    ("1b", "1c", "adaptive vs non-adaptive GCG against the perplexity filter (adaptive - non-adaptive)"),
    ("2a", "2b", "SmoothLLM vs none, prefill k=10 (SmoothLLM - none)"),
    ("1a", "2c", "SmoothLLM vs none, the same GCG suffixes (SmoothLLM - none)"),
    ("3a", "3b", "adaptive vs non-adaptive GCG against the safety signal (adaptive - non-adaptive)"),
    ("3a", "3c", "GCG adaptive to every check vs non-adaptive, against the safety signal (adaptive - non-adaptive)"),
    ("3b", "3c", "GCG adaptive to every check vs to the first only, against the safety signal"),
]


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    for key, value in (TINY if args.tiny else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.tiny:
        args.model = args.model or "tiny"
        args.reference = args.reference or "tiny"
        args.attacker = args.attacker or "tiny"
        args.signal_model = args.signal_model or "tiny"
    args.model = args.model or "smollm2-aligned"
    args.signal_model = args.signal_model or "smollm2"
    args.name = args.name or ("defenses_vs_attacks_tiny" if args.tiny else "defenses_vs_attacks")
    return args


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="target card (default smollm2-aligned; tiny with --tiny)")
    parser.add_argument("--tiny", action="store_true", help="smoke: every model the tiny random one, minimal budgets")
    parser.add_argument("--n", type=int, help="AdvBench behaviors (a seeded sample; default 10)")
    parser.add_argument("--steps", type=int, help="GCG steps (default 20)")
    parser.add_argument("--width", type=int, help="GCG candidates per step (default 64)")
    parser.add_argument("--topk", type=int, help="GCG tokens per position (default 64)")
    parser.add_argument("--max-tokens", dest="max_tokens", type=int, help="greedy tokens per answer (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--benign", default="jbb_benign", help="held-out benign benchmark for the filter's false positives")
    parser.add_argument("--benign-n", dest="benign_n", type=int, help="benign prompts (default all)")
    parser.add_argument("--reference", help="perplexity filter reference card (default the card's: smollm2)")
    parser.add_argument("--copies", type=int, help="SmoothLLM copies N (default 10)")
    parser.add_argument("--safety-signal", dest="safety_signal", action="store_true",
                        help="cell 3: safety-signal defense under adaptive vs non-adaptive GCG (trains the model once)")
    parser.add_argument("--signal-model", dest="signal_model", help="base the safety signal trains on (default smollm2)")
    parser.add_argument("--pair", action="store_true", help="cell 4: PAIR with the embedded model as attacker")
    parser.add_argument("--attacker", help="PAIR attacker card (default the attack card's: smollm2)")
    parser.add_argument("--streams", type=int, help="PAIR streams (default 3)")
    parser.add_argument("--iterations", type=int, help="PAIR iterations (default 3)")
    parser.add_argument("--attacker-tokens", dest="attacker_tokens", type=int, help="PAIR attacker max tokens (120)")
    parser.add_argument("--target-tokens", dest="target_tokens", type=int, help="PAIR target max tokens in the search (48)")
    parser.add_argument("--only", help="comma-separated cell labels to run and report (e.g. 1a,1b)")
    parser.add_argument("--report-only", dest="report_only", action="store_true", help="run nothing; read the cell folders")
    parser.add_argument("--name", help="results file name (default defenses_vs_attacks[_tiny])")
    parser.add_argument("--out-dir", dest="out_dir", type=Path, default=OUT, help="where <name>.{json,md} go")
    parser.add_argument("--runs-dir", dest="runs_dir", type=Path, help="cell folders (default results/bench_runs/<name>)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = resolve(parser().parse_args(argv))

    budget = f"{args.model}_n{args.n}_steps{args.steps}_w{args.width}_k{args.topk}_t{args.max_tokens}_seed{args.seed}"
    root = (args.runs_dir or ROOT / "results" / "bench_runs" / args.name).resolve() / budget
    cells = plan(args, root)
    print(f"{len(cells)} cells in {root}; estimates for 2 idle cores ({'tiny model' if args.tiny else '135M model'}):")
    for c in cells:
        state = f"skipped: {c.skip}" if c.skip else "done: re-run reuses it" if done(root / c.folder) else "new or unfinished"
        print(f"  {c.label:3} {c.title:60} ~{minutes(c.estimate):>9}  ({state})")
    pending = sum(c.estimate for c in cells if not done(root / c.folder) and not c.skip)
    print(f"  total for what is not done: ~{minutes(pending)} (a loaded machine takes longer)", flush=True)

    with Load() as load:
        for c in cells:
            if args.report_only:
                break
            if c.skip:
                c.status = f"skipped: {c.skip}"
                print(f"  cell {c.label}: {c.status}", flush=True)
                continue
            if c.needs is not None and not c.needs.is_file():
                c.status = f"skipped: {c.needs.name} missing (cell 1a did not finish)"
                print(f"  cell {c.label}: {c.status}", flush=True)
                continue
            print(f"cell {c.label}: {c.title} ...", flush=True)
            run_cell(c, root / c.folder)

    rows, outcomes = [], {}
    for c in cells:
        folder = root / c.folder
        if args.report_only:
            c.status = f"skipped: {c.skip}" if c.skip else "done" if done(folder) else "not run or unfinished"
        if not done(folder):
            continue
        row, broken = measure(c, folder)
        timing = folder / "bench_cell.json"
        if timing.is_file():
            c.info["last_working_run"] = json.loads(timing.read_text())
        if row is not None:
            rows.append(row)
            outcomes[c.label] = broken

    paired = []
    for a, b, question in PAIRS:
        if a in outcomes and b in outcomes and len(outcomes[a]) and len(outcomes[b]):
            cmp = compare_pair(outcomes[a], outcomes[b])
            paired.append({"cell_a": a, "cell_b": b, "question": question,
                           **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in cmp.items()}})
    summary = {
        "budget": {"model": args.model, "behaviors": args.n, "benchmark": "advbench (seeded sample, seed "
                   f"{args.seed})", "gcg": {"steps": args.steps, "search_width": args.width, "topk": args.topk},
                   "sampling": f"greedy, {args.max_tokens} tokens", "judge": "keyword",
                   "smoothllm_copies": args.copies, "benign": f"{args.benign} ({args.benign_n or 'all'})",
                   **({"pair": {"streams": args.streams, "iterations": args.iterations,
                                "attacker_max_tokens": args.attacker_tokens, "target_max_tokens": args.target_tokens,
                                "attacker": args.attacker or "smollm2"}} if args.pair else {}),
                   **({"signal_model": args.signal_model} if args.safety_signal else {})},
        "runs": str(root),
        "load": load.summary() | {"cpus": os.cpu_count()},
        "cells": {c.label: {"title": c.title, "folder": c.folder, "status": c.status, "estimate_s": round(c.estimate),
                            "overrides": c.overrides, **c.info} for c in cells},
        "paired": paired,
    }
    write(args.name, rows, summary, notes=notes(args, cells, paired, load.summary()), out=args.out_dir)
    print((args.out_dir / f"{args.name}.md").read_text().split("```json")[0])
    failed = [c.label for c in cells if c.status.startswith("failed")]
    if failed:
        print(f"failed cells: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def notes(args: argparse.Namespace, cells: list[Cell], paired: list[dict[str, Any]], load: dict[str, float]) -> str:
    import pandas as pd

    lines = [
        __doc__.split("\n\n")[0],
        "",
        f"Budget: {args.n} AdvBench behaviors (the same seeded sample in every cell, seed {args.seed}) on `{args.model}`; "
        f"GCG {args.steps} steps, search width {args.width}, top-k {args.topk} (the reference is 500 x 512 x 256: these "
        f"suffixes are weak, and a low GCG ASR here says little about GCG at full strength); greedy answers of "
        f"{args.max_tokens} tokens; keyword judge; SmoothLLM N = {args.copies}, q = 0.1 swap; the perplexity filter at "
        f"its card's 5 % calibrated rate; false positives on {args.benign} ({args.benign_n or 'all'} prompts).",
        "",
        f"Machine: {os.cpu_count()} cores, load average {load['load_mean']:.1f} mean / {load['load_max']:.1f} max while "
        "this ran (a cell reused from an earlier run was timed then: `bench_cell.json` in its folder). Times (search "
        "seconds, wall times) on a loaded machine are upper bounds of what the same machine does idle; ASRs and "
        "block rates do not depend on load.",
        "",
        "Intervals are 95 % Wilson intervals (one greedy answer per behavior). With n this small they are wide: two "
        "cells whose intervals overlap are not shown to differ, and a difference inside the intervals is no "
        "difference. Paired comparisons below (same behaviors) use the exact McNemar test on the discordant "
        "behaviors; p >= 0.05 is no evidence of a difference.",
        "",
        "Columns: `adaptive` is the harness's flag (yes: optimized against the defended pipeline, or on the model "
        "itself when no defense filters at inference time; no: the attack ignored the defense); `blocked` is the "
        "share of outputs the inference-time defense replaced with its refusal (on the benign row: the false-positive "
        "rate; SmoothLLM counts an answer as blocked whenever most perturbed copies refused, also where the model would "
        "have refused unperturbed); `queries` target queries of the search (PAIR; its attacker made as many calls), `forward`/`backward` "
        "GCG's candidate evaluations and gradient passes, `search_s` the search's wall time, all means per behavior; "
        "`eval_tokens` the tokens generated to answer one behavior (SmoothLLM: summed over its copies).",
    ]
    if paired:
        table = pd.DataFrame([{"A": p["cell_a"], "B": p["cell_b"], "comparison (B - A)": p["question"], "n": p["n"],
                               "ASR A %": p["asr_a"], "ASR B %": p["asr_b"],
                               "diff, points [95 %]": f"{p['diff']:+.1f} [{p['diff_lo']:+.1f}, {p['diff_hi']:+.1f}]",
                               "only A / only B": f"{p['b']} / {p['c']}", "McNemar p": p["p"]} for p in paired])
        lines += ["", "Paired comparisons:", "", table.to_markdown(index=False, floatfmt=".3g")]
    missing = [f"{c.label} ({c.status})" for c in cells if c.status.startswith(("failed", "skipped", "not run"))]
    off = [x for x, on in (("3 (--safety-signal)", args.safety_signal), ("4 (--pair)", args.pair)) if not on]
    if missing or off:
        lines += ["", "Not in this table: " + "; ".join(missing + [f"cell {x}: not requested" for x in off]) + "."]
    times = [f"{c.label} {minutes(c.info['last_working_run']['wall_s'])} (est. {minutes(c.estimate)})"
             for c in cells if "last_working_run" in c.info]
    if times:
        lines += ["", "Wall time of the run that did each cell's work (estimate for idle cores): " + ", ".join(times) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
