"""A crescendo run killed with SIGKILL mid-conversation, then re-run: it loses at most the turn in flight, continues
the same conversations, and ends with the records of an uninterrupted run (issue 31)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, harness_cli
from test_kill_resume import complete_lines

from harness.config import compose
from harness.run.compose import build_experiment
from harness.run.loop import run
from harness.store.records import RecordStore

N, T = 3, 4  # conversations, turns each (the judge in the loop never sees a break or a refusal: every turn is asked)


def arguments(data_dir, tiny, out, cache) -> list[str]:
    return [f"data_dir={data_dir}", "model=local", f"model.path={tiny.folder}", "model.name=tiny", f"limit={N}",
            "benchmark.limit_order=first", "attack=crescendo", "model@attack.attacker=local",
            f"attack.attacker.path={tiny.folder}", "attack.attacker.name=tiny", f"attack.turns={T}",
            "attack.attacker_max_tokens=8", "judge@attack.judge=exact_match", "sampling.max_tokens=8",
            "engine.batch_size=1", "attack.attacker_engine.batch_size=1", f"out_dir={out}", f"cache_dir={cache}"]


@pytest.mark.slow  # ~60 s of CPU: runs in .ci/run's slow step, not the default suite
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_mid_conversation_then_resume_ends_as_an_uninterrupted_run(data_dir, tiny, tmp_path):
    whole = run(build_experiment(compose(arguments(data_dir, tiny, tmp_path / "whole", tmp_path / "cache-whole"))))
    expected = {r.key: r for r in whole.records}
    assert len(expected) == N * T and {r.completion.request.params["turn"] for r in whole.records} == set(range(1, T + 1))

    args = arguments(data_dir, tiny, tmp_path / "run", tmp_path / "cache")
    records = tmp_path / "run" / "records.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        try:
            while complete_lines(records) < N + 1:  # into the second turn of the conversations
                assert proc.poll() is None, f"the run ended before it could be killed:\n{(tmp_path / 'first.log').read_text()}"
                assert time.monotonic() < deadline, "no second turn after 240 s"
                time.sleep(0.005)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    kept = complete_lines(records)
    assert N + 1 <= kept < N * T, f"killed after {kept} of {N * T} turns: not mid-conversation"

    second = harness_cli(*args)
    assert second.returncode == 0, second.stderr
    summary = re.search(r"(\d+) completions \((\d+) generated, (\d+) reused, (\d+) re-judged\)", second.stdout + second.stderr)
    assert summary, second.stdout + second.stderr
    assert tuple(map(int, summary.groups())) == (N * T, N * T - kept, kept, 0)  # every stored turn reused, none twice
    resumed = RecordStore(records).load()
    assert resumed == expected  # the same conversations, turn for turn, as the uninterrupted run
    replies = [sum(complete_lines(p) for p in (tmp_path / c / "crescendo").glob("*.jsonl")) for c in ("cache", "cache-whole")]
    assert replies[0] == replies[1]  # no attacker reply drawn twice: the killed run's were replayed
