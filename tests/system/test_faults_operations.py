"""Fault suite, operations (issue 17, items 2, 9, 10, 11): exit codes, Ctrl-C, the run-folder lock, preflight checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, harness_cli, harness_main, serving
from support.fault_server import FaultServer

from harness.errors import ExitCode

TINY = ("model=tiny", "attack=direct", "sampling.max_tokens=3")


@pytest.fixture()
def server():
    fake = FaultServer()
    with serving(fake):
        yield fake


def openai_engine(server: FaultServer, *extra: str) -> tuple[str, ...]:
    return ("engine=openai", f"engine.base_url={server.url()}", "engine.served_model=tiny", "engine.max_retries=0",
            "engine.concurrency=1", "engine.chunk_size=1", *extra)


def start(*args: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=stderr, text=True)


def wait_for(condition, what: str, proc: subprocess.Popen, limit_s: float = 120) -> None:
    """Poll until `condition()` (a readiness wait, not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


# 2. judge errors: the run says so last and exits 3
def test_a_run_whose_judge_calls_fail_exits_3_and_says_so(server, tmp_path):
    server.judge_mode = "500"
    out = harness_cli(*TINY, "limit=2", f"out_dir={tmp_path}", *openai_engine(server), "judge=rubric",
                      f"judge.base_url={server.url()}", "judge.model=judge", "judge.max_retries=0")
    assert out.returncode == ExitCode.JUDGE_ERRORS, out.stdout + out.stderr
    last = "\n".join(out.stdout.strip().splitlines()[-2:])
    assert "2 of 2 verdicts are judge errors" in last and "InternalServerError" in last, out.stdout + out.stderr
    import pandas as pd

    assert int(pd.read_csv(tmp_path / "asr.csv")["errors"].sum()) == 2  # counted apart in the table


# 9. Ctrl-C while the server hangs: stops at once, keeps what finished, exit 130
def test_ctrl_c_with_a_hanging_server_keeps_what_finished(server, tmp_path):
    server.hang_after = 2
    records = tmp_path / "records.jsonl"
    proc = start(*TINY, "limit=6", f"out_dir={tmp_path}", *openai_engine(server, "engine.timeout=600"))
    wait_for(lambda: lines(records) >= 2 and len(server.seen) >= 3, "two records and a hanging call", proc)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)  # waiting for the hanging call would take engine.timeout=600 s
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("Ctrl-C did not stop the run while a call hung")
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert lines(records) == 2 and "Traceback" not in err
    generated = [r for r in server.seen if r["path"].endswith("/chat/completions")]
    assert len(generated) == 3  # the queued calls never started


# 10. two runs on one folder: the second says who holds it and stops (5), or waits (--wait)
@pytest.mark.slow
def test_a_second_run_on_a_busy_folder_stops_or_waits(server, tmp_path):
    server.hang_after = 1
    lock = tmp_path / ".harness.lock"
    first = start(*TINY, "limit=2", f"out_dir={tmp_path}", *openai_engine(server))
    wait_for(lambda: lock.exists() and lock.read_text().strip() != "" and len(server.seen) >= 2, "the lock", first)
    second = harness_cli(*TINY, "limit=2", f"out_dir={tmp_path}", *openai_engine(server))
    assert second.returncode == ExitCode.FOLDER_BUSY, second.stdout + second.stderr
    assert f"in use by pid {first.pid}" in second.stderr and "--wait" in second.stderr
    log = tmp_path.parent / f"{tmp_path.name}-waiting.err"
    with open(log, "w") as err_file:
        waiting = start(*TINY, "limit=2", f"out_dir={tmp_path}", *openai_engine(server), "--wait", stderr=err_file)
        wait_for(lambda: "waiting for run folder" in log.read_text(), "the second run to queue", waiting)
        server.hang_after = None
        server.release.set()
        assert first.wait(timeout=120) == 0
        out, _ = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, log.read_text()
    assert f"in use by pid {first.pid}" in log.read_text() and "0 generated, 2 reused" in out
    assert lines(tmp_path / "records.jsonl") == 2  # nothing generated twice


# 11. what a plugin needs from outside is checked before anything expensive
def test_a_judge_without_key_or_server_fails_before_any_work(tmp_path):
    env_key = os.environ.pop("OPENAI_API_KEY", None)
    try:
        out = harness_main(*TINY, "limit=1", f"out_dir={tmp_path}", "judge=rubric")
    finally:
        if env_key is not None:
            os.environ["OPENAI_API_KEY"] = env_key
    assert out.returncode == ExitCode.USER_ERROR and "Traceback" not in out.stderr
    assert "judge.api_key_env='OPENAI_API_KEY'" in out.stderr
    assert "benchmark advbench" not in (tmp_path / "harness.log").read_text()  # nothing loaded, nothing generated


def test_an_engine_server_that_is_down_fails_before_any_work(tmp_path):
    out = harness_main(*TINY, "limit=1", f"out_dir={tmp_path}", "engine=openai", "engine.base_url=http://127.0.0.1:9/v1",
                      "engine.max_retries=0")
    assert out.returncode == ExitCode.USER_ERROR and "cannot reach http://127.0.0.1:9/v1" in out.stderr
    assert "benchmark advbench" not in (tmp_path / "harness.log").read_text()


def test_stopping_concurrent_calls_starts_no_queued_call():
    import threading

    from harness.util.calls import concurrently

    started, gate = [], threading.Event()

    def call(i: int) -> int:
        started.append(i)
        if i > 0:
            gate.wait(30)  # a hanging server
        return i

    calls = concurrently(call, list(range(10)), workers=2)
    assert next(calls) == (0, 0, None)
    calls.close()  # what the run loop's Ctrl-C does
    gate.set()
    for worker in [t for t in threading.enumerate() if t.name == "harness-call"]:
        worker.join(30)  # had they not stopped, they would now take 3..9
    assert set(started) <= {0, 1, 2}  # only the two workers' first calls; 3..9 never start
