"""Fault suite, counting: no failure is counted as a verdict, nothing readable is lost (issue 17, items 1-6).

Loopback fault server (tests/support/fault_server.py) and the tiny model; each case asserts the exact outcome.
"""

from __future__ import annotations

from functools import partial

import pytest
from conftest import Fixed, harness_cli, harness_main, serving
from support.fault_server import FaultServer

from harness.defense import Defense
from harness.engine.hf import HFEngine
from harness.engine.openai_engine import OpenAIEngine
from harness.errors import DataError, ExitCode, HarnessError, RequestsFailed
from harness.judge.keyword import KeywordJudge
from harness.run.loop import Experiment, run
from harness.store.records import RecordStore
from harness.types import Behavior, Message, Request, Sampling
from harness.util.data_files import read_table


@pytest.fixture()
def server():
    fake = FaultServer()
    with serving(fake):
        yield fake




BEHAVIORS = [Behavior(id=f"b{i}", prompt=f"request number {i}") for i in range(4)]


def experiment(tiny, tmp_path, server, api: str) -> Experiment:
    from attacks.direct import DirectAttack

    engine = partial(OpenAIEngine, base_url=server.url(), served_model="tiny", api=api, max_retries=0,
                     concurrency=2, progress=False)
    return Experiment(model=tiny, benchmark=Fixed(BEHAVIORS), attack=DirectAttack(), defense=Defense(),
                      judge=KeywordJudge(), engine=engine, sampling=Sampling(max_tokens=4), out_dir=tmp_path)


# 1. a null or missing answer is a failed request, never an empty completion judged a refusal
@pytest.mark.parametrize("api", ["chat", "completions"])
@pytest.mark.parametrize("mode", ["null", "missing"])
def test_a_server_answer_without_text_is_a_failed_request(tiny, tmp_path, server, api, mode):
    server.mode = mode
    outcome = run(experiment(tiny, tmp_path, server, api))
    assert isinstance(outcome.failed, RequestsFailed) and "4 requests failed" in str(outcome.failed)
    assert "no text" in str(outcome.failed)
    assert outcome.records == [] and RecordStore(tmp_path / "records.jsonl").load() == {}  # no verdict at all
    server.mode = "ok"
    again = run(experiment(tiny, tmp_path, server, api))  # nothing reused: all four are generated now
    assert again.failed is None and again.generated == 4 and again.reused == 0
    assert all(r.verdict.harmful is True for r in again.records)


def test_an_empty_string_the_model_generated_stays_an_answer(tiny, tmp_path, server):
    server.mode = "empty"
    outcome = run(experiment(tiny, tmp_path, server, "chat"))
    assert outcome.failed is None and len(outcome.records) == 4
    assert all(r.completion.text == "" and r.verdict.refused is True and r.verdict.harmful is False
               for r in outcome.records)


# 2. (judge errors -> exit code 3: tests/test_faults_judges.py) failed requests -> their own exit code
def test_failed_requests_end_the_cli_run_with_exit_code_4_and_a_last_line(tmp_path, server):
    server.mode = "null"
    out = harness_cli("model=tiny", "attack=direct", "limit=2", "sampling.max_tokens=4", f"out_dir={tmp_path}",
                      "engine=openai", f"engine.base_url={server.url()}", "engine.served_model=tiny", "engine.max_retries=0")
    assert out.returncode == ExitCode.FAILED_REQUESTS, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    last = "\n".join(out.stdout.strip().splitlines()[-2:])  # the log's console lines
    assert "2 requests failed" in last and "re-run the same command" in last, out.stdout + out.stderr
    assert "no completions to report" in out.stdout and not (tmp_path / "records.jsonl").exists()


# 3. non-finite numbers are refused where they are read
@pytest.mark.parametrize("override", ["sampling.temperature=inf", "sampling.top_p=nan", "engine.timeout=inf"])
def test_non_finite_numbers_are_refused_before_anything_runs(tmp_path, override):
    out = harness_main("model=tiny", "attack=direct", "limit=1", f"out_dir={tmp_path}", "engine=openai", override)
    assert out.returncode == ExitCode.USER_ERROR and "Traceback" not in out.stderr
    key = override.split("=")[0]
    assert f"{key}=" in out.stderr and "not a finite number" in out.stderr
    assert not (tmp_path / "records.jsonl").exists()


def test_the_typed_core_refuses_non_finite_values():
    with pytest.raises(ValueError, match="finite"):
        Sampling(temperature=float("inf"))


# 4. a complete last line without its newline is a record, not a torn line
def test_a_complete_last_line_without_newline_is_kept(tiny, tmp_path):
    from attacks.direct import DirectAttack

    exp = Experiment(model=tiny, benchmark=Fixed(BEHAVIORS[:2]), attack=DirectAttack(), defense=Defense(),
                     judge=KeywordJudge(), engine=partial(HFEngine, progress=False), sampling=Sampling(max_tokens=3),
                     out_dir=tmp_path)
    run(exp)
    path = tmp_path / "records.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    before = path.read_bytes()
    assert len(RecordStore(path).load()) == 2 and path.read_bytes() == before  # a reader keeps it and writes nothing
    assert len(RecordStore(path).load(repair=True)) == 2
    assert path.read_bytes().endswith(b"\n")  # the writer finishes it, so the next append starts a line of its own
    again = run(exp)
    assert again.generated == 0 and again.reused == 2 and len(path.read_text().splitlines()) == 2
    torn = path.read_bytes() + b'{"run": "abc", "mod'  # a line cut by kill -9 is still dropped
    path.write_bytes(torn)
    assert len(RecordStore(path).load()) == 2 and path.read_bytes() == torn  # skipped by a reader, left in place
    assert len(RecordStore(path).load(repair=True)) == 2 and len(path.read_text().splitlines()) == 2  # cut by the writer


# 5. malformed data files: an error naming the line
def test_a_ragged_csv_row_is_an_error_naming_its_line(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('prompt,category\n"first, quoted",a\nsecond,b,extra\nthird,c\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"mine.csv, line 3: 3 fields where the header has 2"):
        read_table(path)


def test_a_short_csv_row_is_an_error_naming_its_line(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("prompt,category\nfirst,a\nsecond\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3: 1 fields where the header has 2"):
        read_table(path)


@pytest.mark.parametrize(("value", "kind"), [("12345.0", "float"), ('{"a": 1}', "dict"), ("[1, 2]", "list"), ("true", "bool")])
def test_a_jsonl_prompt_that_is_not_text_is_an_error_naming_its_line(tmp_path, value, kind):
    from benchmarks.custom import CustomFile

    path = tmp_path / "mine.jsonl"
    path.write_text(f'{{"prompt": "fine"}}\n\n{{"prompt": {value}}}\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"mine.jsonl, line 3: column 'prompt' \(prompt\) holds a {kind}"):
        CustomFile(path=str(path)).load()


def test_whole_number_ids_are_fine(tmp_path):
    from benchmarks.custom import CustomFile

    path = tmp_path / "mine.jsonl"
    path.write_text('{"prompt": "a", "id": 7}\n{"prompt": "b", "id": 8}\n', encoding="utf-8")
    assert [b.id for b in CustomFile(path=str(path)).load()] == ["7", "8"]


# 6. prompt + max_tokens beyond the model's context: an error before generating
def test_a_prompt_longer_than_the_context_is_refused_before_generating(tiny):
    engine = HFEngine(tiny, progress=False)
    long = Request(behavior_id="long", messages=(Message(role="user", content="word " * 3000),), sampling=Sampling())
    with pytest.raises(HarnessError, match=r"behavior 'long': its prompt has \d+ tokens .* more than the 2048 tokens"):
        engine.generate([long])


def test_an_absurd_max_tokens_is_refused_before_generating(tiny):
    short = Request(behavior_id="short", messages=(Message(role="user", content="hi"),),
                    sampling=Sampling(max_tokens=int(1e11)))
    with pytest.raises(HarnessError, match=r"sampling.max_tokens=100000000000"):
        HFEngine(tiny, progress=False).check_fits([short])
