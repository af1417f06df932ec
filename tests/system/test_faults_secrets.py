"""Fault suite, secrets (issue 17, items 7-8): a planted key and URL password never reach the disk.

A run through the OpenAI-compatible engine and the rubric judge, against a loopback server that
echoes the request's Authorization header into its answers; then every file of the run folder and
of the cache is searched for the key, the passwords and their Basic-auth form.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from conftest import harness_main, serving
from support.fault_server import FaultServer

KEY = "sk-planted-key-0f9e8d7c6b5a"
PASSWORD, JUDGE_PASSWORD = "hunter2-engine-pw", "hunter3-judge-pw"


def leaks(folder: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.relative_to(folder)}: {s}" for s in secrets if s.encode() in data]
    return found


@pytest.fixture()
def server():
    fake = FaultServer()
    fake.mode = fake.judge_mode = "echo"
    with serving(fake):
        yield fake


def secrets_for(user: str, password: str) -> list[str]:
    return [KEY, password, base64.b64encode(f"{user}:{password}".encode()).decode()]


def run_with(server: FaultServer, tmp_path: Path, engine_url: str, judge_url: str):
    os.environ["FAULT_TEST_KEY"] = KEY
    try:
        return harness_main(
            "model=tiny", "attack=direct", "limit=2", "sampling.max_tokens=3", f"out_dir={tmp_path / 'run'}",
            f"cache_dir={tmp_path / 'cache'}", "engine=openai", f"engine.base_url={engine_url}", "engine.served_model=tiny",
            "engine.api_key_env=FAULT_TEST_KEY", "engine.max_retries=0", "judge=rubric", f"judge.base_url={judge_url}",
            "judge.model=judge", "judge.api_key_env=FAULT_TEST_KEY", "judge.max_retries=0")
    finally:
        del os.environ["FAULT_TEST_KEY"]


def test_url_credentials_and_echoed_basic_auth_never_reach_the_disk(server, tmp_path):
    out = run_with(server, tmp_path, server.url(f"user:{PASSWORD}"), server.url(f"judge:{JUDGE_PASSWORD}"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert any(r["auth"].startswith("Basic ") for r in server.seen)  # the server did get (and echo) the credentials
    planted = secrets_for("user", PASSWORD) + secrets_for("judge", JUDGE_PASSWORD)
    assert leaks(tmp_path, planted) == []
    assert not any(s in out.stdout + out.stderr for s in planted)
    records = (tmp_path / "run" / "records.jsonl").read_text()
    assert "you sent Basic ***" in records  # the echo was stored, scrubbed
    assert "127.0.0.1" in (tmp_path / "run" / ".hydra" / "overrides.yaml").read_text()  # the URL itself stays
    assert "HTTP Request:" not in (tmp_path / "run" / "harness.log").read_text()  # no per-request client lines


def test_an_echoed_bearer_key_never_reaches_the_disk(server, tmp_path):
    out = run_with(server, tmp_path, server.url(), server.url())
    assert out.returncode == 0, out.stdout + out.stderr
    assert any(r["auth"] == f"Bearer {KEY}" for r in server.seen)
    assert leaks(tmp_path, [KEY]) == []
    assert (tmp_path / "cache" / "judge").is_dir()  # the judge's reply cache was searched too


def test_a_key_in_a_url_query_string_never_reaches_the_disk(server, tmp_path):
    """judge.base_url=...?api-key=... was written in clear to run.json and .hydra/*.yaml."""
    secret = "query-planted-key-7a6b5c4d"
    quoted = "'{}'".format  # Hydra's override grammar: a value holding '=' is quoted
    out = run_with(server, tmp_path, quoted(server.url() + f"?token={secret}"), quoted(server.url() + f"?api-key={secret}&x=1"))
    assert (tmp_path / "run" / "run.json").is_file(), out.stdout + out.stderr
    assert leaks(tmp_path, [secret, KEY]) == []
    assert secret not in out.stdout + out.stderr
    assert "api-key=***" in (tmp_path / "run" / "run.json").read_text()  # the URL is kept, its key masked
