"""A real run killed with SIGKILL mid-way, plus a torn last line, then restarted: it resumes exactly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, harness_cli

from harness.types import Record

N = 12  # behaviors, one completion each (direct attack)


def complete_lines(path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_mid_run_then_resume(data_dir, tiny, tmp_path):
    run = tmp_path / "run"
    args = [f"data_dir={data_dir}", "model=local", f"model.path={tiny.folder}", "model.name=tiny", f"limit={N}",
            "benchmark.limit_order=first", "attack=direct", "sampling.max_tokens=48", "engine.batch_size=1", f"out_dir={run}"]
    records = run / "records.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        try:
            while complete_lines(records) < 2:  # one batch (one completion) is appended at a time
                assert proc.poll() is None, f"the run ended before it could be killed:\n{(tmp_path / 'first.log').read_text()}"
                assert time.monotonic() < deadline, "no records after 240 s"
                time.sleep(0.005)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    kept = complete_lines(records)
    assert 2 <= kept < N, f"killed after {kept} of {N} records: not mid-run"
    killed = json.loads((run / "run.json").read_text())  # the manifest is written when the run starts
    assert killed["status"] == "running" and killed["config"]["limit"] == N and "finished" not in killed

    # A torn write, as a kill during an append leaves it: the first half of a record line, no newline.
    line = records.read_bytes().splitlines()[0]
    with open(records, "ab") as f:
        f.write(line[: len(line) // 2])

    second = harness_cli(*args)
    assert second.returncode == 0, second.stderr
    summary = re.search(r"(\d+) completions \((\d+) generated, (\d+) reused, (\d+) re-judged\)", second.stdout + second.stderr)
    assert summary, second.stdout + second.stderr
    total, generated, reused, rejudged = map(int, summary.groups())
    assert (total, reused, rejudged) == (N, kept, 0)  # every stored completion reused, none judged again
    assert generated == N - kept  # only the missing ones generated: nothing twice
    assert "dropping a partly written last line" in second.stdout + second.stderr
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "done" and manifest["schema"] == 1
    assert manifest["counts"] == {"behaviors": N, "requests": N, "records": N, "generated": N - kept, "reused": kept,
                                  "rejudged": 0}
    assert manifest["versions"]["torch"] and manifest["settings"]["attack"] == {"attack": "direct"}
    assert manifest["git"]["commit"] and manifest["hardware"]["cpus"] >= 1

    lines = records.read_bytes().split(b"\n")
    assert lines[-1] == b""  # the file ends with a full line
    parsed = [Record.model_validate_json(line) for line in lines[:-1]]  # every line is a whole record
    keys = [r.key for r in parsed]
    assert len(parsed) == N and len(set(keys)) == N  # each completion stored exactly once
    assert {r.behavior.id for r in parsed} == {f"advbench-{i}" for i in range(N)}  # none lost

