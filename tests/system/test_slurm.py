"""The SLURM suite: sweeps submitted through hydra-submitit-launcher to a real SLURM cluster
(`pytest -m slurm`; .ci/slurm.sh starts a one-node slurmctld + slurmd on localhost, runs this
and stops them). Every check goes through the scheduler: job ids come from the runs' own logs
(SLURM_JOB_ID) and scontrol must know each one as a finished job; without a cluster the suite fails."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

from harness.store.records import RecordStore

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def cluster() -> None:
    if shutil.which("sbatch") is None:
        pytest.fail("SLURM client tools not installed: run the suite through .ci/slurm.sh")
    info = subprocess.run(["sinfo", "-h", "-o", "%t"], check=False, capture_output=True, text=True)
    if info.returncode != 0 or not info.stdout.strip():
        pytest.fail(f"no SLURM controller answers (sinfo: {info.stderr.strip()}): start one with .ci/slurm.sh start")


def sweep_cmd(tiny, data_dir: Path, sweep: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "harness", "--multirun", "hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=2", "model=local", f"model.path={tiny.folder}", "model.name=tiny",
            f"data_dir={data_dir}", f"hydra.sweep.dir={sweep}", *overrides]


def env_with_cache(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "HARNESS_CACHE_DIR": str(tmp_path / "cache")}


def job_ids(log: Path) -> list[str]:
    """SLURM job ids named in a run's harness.log, in order (one per submission that ran it)."""
    return re.findall(r"SLURM job (\d+) ", log.read_text())


def job_state(job: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", job], check=False, capture_output=True, text=True)
    assert out.returncode == 0, f"scontrol does not know job {job}: {out.stderr}"
    return re.search(r"JobState=(\w+)", out.stdout).group(1)


def final_state(job: str, timeout: float = 120) -> str:
    """The job's state once SLURM has finished it (a job whose result is back may still be completing)."""
    deadline = time.monotonic() + timeout
    while (state := job_state(job)) in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING") and time.monotonic() < deadline:
        time.sleep(0.5)
    return state


def test_sweep_of_four_jobs_runs_through_slurm_and_merges(cluster, tiny, data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    run = subprocess.run(sweep_cmd(tiny, data_dir, sweep, "attack=direct,prefill", "defense=none,system_prompt", "limit=3",
                                   "sampling.max_tokens=4"),
                         check=False, cwd=ROOT, env=env_with_cache(tmp_path), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    folders = sorted(p.parent for p in sweep.rglob("records.jsonl"))
    assert [f.relative_to(sweep).as_posix() for f in folders] == [
        "local/advbench/direct/none", "local/advbench/direct/system_prompt",
        "local/advbench/prefill/none", "local/advbench/prefill/system_prompt"]
    jobs = set()
    for folder in folders:
        (job,) = job_ids(folder / "harness.log")  # the run executed inside a SLURM job, exactly once
        assert final_state(job) == "COMPLETED"
        jobs.add(job)
        expected = 3 if "/direct/" in folder.as_posix() else 3 * 4  # prefill: k = 0, 5, 10, 20
        assert len((folder / "records.jsonl").read_text().splitlines()) == expected
    assert len(jobs) == 4
    # SLURM's logs and job scripts land beside the sweep; every job exported the shared model cache
    logs = sorted((sweep / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 4, logs
    scripts = list((sweep / ".submitit").glob("*/*_submission.sh"))
    assert scripts and f"export HARNESS_CACHE_DIR={tmp_path / 'cache'}" in scripts[0].read_text()

    merged = tmp_path / "merged"
    out = subprocess.run([sys.executable, "-m", "harness", "report", str(sweep), "--out", str(merged)],
                         check=False, cwd=ROOT, env=env_with_cache(tmp_path), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "4 run folders merged" in out.stdout
    table = pd.read_csv(merged / "asr.csv")
    assert set(zip(table["attack"], table["defense"])) == {(a, d) for a in ("direct", "prefill")
                                                            for d in ("none", "system_prompt")}


def test_job_cancelled_mid_run_resumes_on_resubmission(cluster, tiny, data_dir, tmp_path):
    """scancel a job half-way; re-submitting the sweep finishes it: every completion written before the cancel
    is kept as it was, none is generated twice."""
    sweep = tmp_path / "sweep"
    # 100 decoding configurations of two behaviors, 2 rows per batch: 100 appends to records.jsonl, far longer than
    # the 5 s between scancel's SIGTERM (which submitit's job bypasses) and its SIGKILL even on idle cores, so the
    # cancel always lands mid-run
    cmd = sweep_cmd(tiny, data_dir, sweep, "attack=decoding", "limit=2", "sampling.max_tokens=32", "engine.batch_size=2")
    expected = 200
    records = sweep / "local/advbench/decoding/none/records.jsonl"
    submitter = subprocess.Popen(cmd, cwd=ROOT, env=env_with_cache(tmp_path), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not (records.exists() and records.stat().st_size > 0):
            assert submitter.poll() is None and time.monotonic() < deadline, "the job never wrote a record"
            time.sleep(0.1)
        (job,) = job_ids(records.parent / "harness.log")
        subprocess.run(["scancel", job], check=True)
        state = final_state(job)
    finally:  # the submitter waits for results the cancelled job will never write
        os.killpg(submitter.pid, signal.SIGKILL)
        submitter.wait()
    assert state == "CANCELLED"
    before = records.read_bytes()
    before = before[: before.rfind(b"\n") + 1]  # a line torn by the kill is not a record
    written = len(before.splitlines())
    assert 0 < written < expected, f"the job was not cancelled mid-run ({written} of {expected} records)"

    again = subprocess.run(cmd, check=False, cwd=ROOT, env=env_with_cache(tmp_path), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    log = (records.parent / "harness.log").read_text()
    first, second = job_ids(records.parent / "harness.log")
    assert first == job and final_state(second) == "COMPLETED"
    assert f"resuming: {written} of {expected} completions already in" in log
    after = records.read_bytes()
    assert after.startswith(before)  # nothing written before the cancel was lost or rewritten
    assert len(after.splitlines()) == len(RecordStore(records).load()) == expected  # every completion exactly once
