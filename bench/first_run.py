"""The README's first command as a new user runs it: `python -m harness data_dir=...` (the default
experiment on smollm2-aligned), fresh (an empty model cache: GGUF conversion, sampling the base's
answers, safety SFT, then the run) and warm (the model cached, a new run folder: the run alone).

Stage times come from the run's own log: the conversion line, then each stage's first and last
progress line (sampling answers, training, generating). The machine's load average is sampled
every 5 s during each run and recorded beside it: on a shared machine a time is an upper bound
of what the same machine does idle.

`--fresh N` repeats the fresh run N times (each from its own empty cache; a warm run follows each with
`--warm-each`, else one warm run follows the last) and the summary gives the median and the range of each.
The aims (issue 32): fresh <= 8 min (the median of three), warm <= 1 min, on 2 idle cores.

Writes results/bench/first_run.{json,md}.

    python bench/first_run.py                        # one fresh + one warm (~10-40 min on 2 cores, by load)
    python bench/first_run.py --fresh 3              # three fresh runs, then a warm one (the aim's measurement)
    python bench/first_run.py --warm-only --warm 3   # against the current model cache
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from common import DATA, ROOT, write

STAMP = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+)\]"
STAGES = ("sampling answers", "training", "generating")


def stamp(line: str) -> datetime | None:
    match = re.match(STAMP, line)
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f") if match else None


def stage_seconds(log: str) -> dict[str, float]:
    """Seconds per stage from a harness.log: GGUF conversion (its line to the next), each progress stage (first
    line to its last)."""
    lines = log.splitlines()
    out: dict[str, float] = {}
    for i, line in enumerate(lines):
        if "converting " in line and "(once" in line and i + 1 < len(lines):
            start, end = stamp(line), stamp(lines[i + 1])
            if start and end:
                out["gguf conversion"] = (end - start).total_seconds()
    for stage in STAGES:
        times = [stamp(x) for x in lines if "[harness.util.progress]" in x and re.search(rf"- {stage} \[", x)]
        times = [t for t in times if t]
        if times:
            out[stage] = (max(times) - min(times)).total_seconds()
    return out


class Load:
    """The 1-minute load average, sampled every 5 s while a run lasts."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self) -> None:
        while not self.stop.wait(5.0):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> Load:  # noqa: PYI034
        self.samples.append(os.getloadavg()[0])
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def summary(self) -> dict[str, float]:
        return {"load_mean": sum(self.samples) / len(self.samples), "load_max": max(self.samples)}


def run(label: str, cache: Path, out_dir: Path, timeout: float | None) -> dict:
    """One run of the default command; past `timeout` seconds it is stopped and the stages it finished are reported."""
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"} | {"HARNESS_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "harness", f"data_dir={DATA}", f"out_dir={out_dir}"]
    with Load() as load, tempfile.TemporaryFile("w+") as errors:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errors, text=True)
        try:
            child.wait(timeout=timeout)
            finished = True
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            finished = False
        seconds = time.perf_counter() - start
        errors.seek(0)
        if finished and child.returncode != 0:
            sys.exit(f"first_run: the {label} run failed:\n{errors.read()[-3000:]}")
    log_file = out_dir / "harness.log"
    stages = stage_seconds(log_file.read_text()) if log_file.exists() else {}
    print(f"{label}: {seconds / 60:.1f} min{'' if finished else ' (stopped, unfinished)'} "
          f"(load {load.summary()['load_mean']:.1f}) {stages}", flush=True)
    return {"run": label, "finished": finished, "minutes": seconds / 60, **{f"{k} s": v for k, v in stages.items()},
            **load.summary(), "cpus": os.cpu_count(), "asr": asr_by_k(out_dir)}


def asr_by_k(out_dir: Path) -> str:
    """The run's ASR per prefill length with its 95 % interval, from the asr.csv it wrote ("" if none)."""
    table = out_dir / "asr.csv"
    if not table.exists():
        return ""
    import pandas as pd

    frame = pd.read_csv(table)
    key = "prefill_tokens" if "k" not in frame.columns else "k"
    return "; ".join(f"k={row[key]:g}: {row['asr']:.0f} [{row['asr_lo']:.0f}-{row['asr_hi']:.0f}] (n={row['n']})"
                     for _, row in frame.iterrows())


def report(rows: list[dict]) -> Path:
    """Write results/bench/first_run.{json,md} from the runs so far (after every run: a stopped bench keeps them)."""
    fresh = [r for r in rows if r["run"].startswith("fresh")]
    warm = [r for r in rows if r["run"].startswith("warm")]
    done = [r["minutes"] for r in fresh if r["finished"]]
    warm_min = [r["minutes"] for r in warm if r["finished"]]
    summary = {"fresh_runs": len(fresh), "fresh_finished": len(done),
               "fresh_median_min": statistics.median(done) if done else None,
               "fresh_range_min": [min(done), max(done)] if done else None,
               "warm_runs": len(warm), "warm_median_min": statistics.median(warm_min) if warm_min else None,
               "warm_range_min": [min(warm_min), max(warm_min)] if warm_min else None,
               "fresh_aim_8_min_met": statistics.median(done) <= 8 if done and len(done) == len(fresh) else None,
               "warm_aim_1_min_met": statistics.median(warm_min) <= 1 if warm_min else None,
               "asr_identical_across_runs": len({r["asr"] for r in rows}) == 1 if rows else None,
               "load_note": "load averages above the core count mean other work shared the CPU: times are upper bounds"}
    notes = ("The README's first command (`python -m harness data_dir=...`), fresh (each from its own empty "
             "HARNESS_CACHE_DIR) and warm (the model cached, a new run folder). Load average sampled every 5 s during "
             f"each run on a {os.cpu_count()}-core machine.")
    return write("first_run", rows, summary, notes=notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm-only", action="store_true", help="skip the fresh run; use the current model cache")
    parser.add_argument("--fresh", type=int, default=1, help="fresh runs, each from its own empty cache")
    parser.add_argument("--warm", type=int, default=1, help="warm runs after the last fresh run (or alone)")
    parser.add_argument("--warm-each", action="store_true", help="also one warm run after every earlier fresh run")
    parser.add_argument("--timeout", type=float, default=None, help="stop a run after this many minutes (report its stages)")
    args = parser.parse_args()
    rows, timeout = [], args.timeout * 60 if args.timeout else None

    def add(row: dict) -> dict:
        rows.append(row)
        report(rows)
        return row

    with tempfile.TemporaryDirectory(prefix="first-run-") as tmp:
        caches = ([Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "harness"))] if args.warm_only
                  else [Path(tmp) / f"cache-{i}" for i in range(args.fresh)])
        for i, cache in enumerate(caches):
            if not args.warm_only and not add(run(f"fresh {i + 1} (empty cache)", cache, Path(tmp) / f"fresh-{i}",
                                                  timeout))["finished"]:
                print("first_run: a fresh run did not finish: no warm run after it", flush=True)
                continue
            last = i == len(caches) - 1
            for j in range(args.warm if last else int(args.warm_each)):
                add(run(f"warm {i + 1}.{j + 1} (model cached, new run folder)", cache, Path(tmp) / f"warm-{i}-{j}", timeout))
            if not args.warm_only:
                shutil.rmtree(cache, ignore_errors=True)  # ~1 GB each
    print(report(rows).read_text())


if __name__ == "__main__":
    main()
