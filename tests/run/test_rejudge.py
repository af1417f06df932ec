"""python -m harness rejudge: new verdicts for stored completions, no generation."""

from __future__ import annotations

import json
import shutil
import subprocess

import pandas as pd
import pytest
from conftest import harness_main

from harness.cli import rejudge as rejudge_command
from harness.store.records import RecordStore


def rejudge_cli(*args: str) -> subprocess.CompletedProcess:
    return harness_main("rejudge", *args)


@pytest.fixture(scope="module")
def finished_run(data_dir, tiny, tmp_path_factory):
    """A finished keyword-judged run on a private copy of the tiny model, which is then deleted:
    re-judging must not need the generating model."""
    root = tmp_path_factory.mktemp("rejudge")
    model = root / "model"
    shutil.copytree(tiny.folder, model)
    run = root / "run"
    out = harness_main(f"data_dir={data_dir}", "model=local", f"model.path={model}", "model.name=tiny", "limit=3",
                       "sampling.max_tokens=8", "attack.lengths=[0,5]", f"out_dir={run}", f"cache_dir={root / 'cache'}")
    assert out.returncode == 0, out.stderr
    shutil.rmtree(model)
    return run


@pytest.fixture()
def judged_run(finished_run, tmp_path):
    shutil.copytree(finished_run, tmp_path / "run")
    return tmp_path / "run"


def lines(run) -> list[dict]:
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


def test_rejudge_appends_new_verdicts_and_rewrites_tables(judged_run, tmp_path):
    before = RecordStore(judged_run / "records.jsonl").load()
    assert {r.verdict.judge.split("@")[0] for r in before.values()} == {"keyword"}
    (judged_run / "asr.csv").unlink()

    out = rejudge_cli(str(judged_run), "judge=keyword_gcg", f"cache_dir={tmp_path / 'cache'}")
    assert out.returncode == 0, out.stderr
    assert "6 of 6 records re-judged with keyword@" in out.stdout
    after = RecordStore(judged_run / "records.jsonl").load()
    assert after.keys() == before.keys()
    for key, record in after.items():
        assert record.verdict.judge.startswith("keyword@") and record.verdict.judge != before[key].verdict.judge
        assert record.completion == before[key].completion  # same completion, not regenerated
    assert len(lines(judged_run)) == 12  # appended; the latest line per completion wins
    table = pd.read_csv(judged_run / "asr.csv")
    assert list(table["n"]) == [3, 3] and (judged_run / "asr.md").read_text() in out.stdout
    assert not (judged_run / "judge_usage.jsonl").exists()  # the keyword judge calls no model

    again = rejudge_cli(str(judged_run), "judge=keyword_gcg")
    assert again.returncode == 0 and "0 of 6 records re-judged" in again.stdout
    forced = rejudge_cli(str(judged_run), "judge=keyword_gcg", "--all")
    assert forced.returncode == 0 and "6 of 6 records re-judged" in forced.stdout
    assert len(lines(judged_run)) == 18


def test_rejudge_with_the_classifier_judge_counts_errors(judged_run, tiny, tmp_path):
    """The classifier judge on the tiny model (which answers neither Yes nor No): errors, counted, not verdicts."""
    cache = tmp_path / "cls-cache"
    out = rejudge_cli(str(judged_run), "judge=harmbench_cls", "model@judge.model=local", f"judge.model.path={tiny.folder}",
                      "judge.engine.batch_size=4", f"cache_dir={cache}")
    assert out.returncode == 0, out.stderr
    records = RecordStore(judged_run / "records.jsonl").load().values()
    assert all(r.verdict.judge.startswith("harmbench_cls@") for r in records)
    failed = [r for r in records if r.verdict.error]
    assert all(r.verdict.harmful is None and r.verdict.refused is None for r in failed)
    table = pd.read_csv(judged_run / "asr.csv")
    assert int(table["errors"].sum()) == len(failed)
    (usage,) = [json.loads(line) for line in (judged_run / "judge_usage.jsonl").read_text().splitlines()]
    assert usage["step"] == "rejudge" and usage["judge"].startswith("harmbench_cls@")
    nonempty = sum(bool((r.completion.request.prefill + r.completion.text).strip()) for r in records)
    assert usage["calls"] + usage["cache_hits"] <= nonempty and usage["errors"] == len(failed)
    assert usage["completion_tokens"] <= usage["calls"]  # one token per classified prompt


def test_sweep_folder_is_searched_recursively(judged_run, tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "a").mkdir(parents=True)
    shutil.copytree(judged_run, sweep / "a" / "run")
    shutil.copytree(judged_run, sweep / "b")
    out = rejudge_cli(str(sweep), "judge=keyword_gcg")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("6 of 6 records re-judged") == 2


@pytest.mark.parametrize("args, message", [
    (["judge=nope"], "judge/nope"),
    (["judge.phrases=whatever"], "judge.phrases='whatever'"),
    (["judge"], "judge: no such run folder"),
])
def test_bad_judge_settings_give_one_clear_message(judged_run, args, message):
    out = rejudge_cli(str(judged_run), *args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr


def test_missing_folder_is_a_clear_error(tmp_path):
    out = rejudge_cli(str(tmp_path / "nowhere"), "judge=keyword")
    assert out.returncode == 2 and "no such run folder" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "empty").mkdir()
    out = rejudge_cli(str(tmp_path / "empty"), "judge=keyword")
    assert out.returncode == 2 and "no records.jsonl" in out.stderr


def synthetic_run(tmp_path, seed: int = 5):
    from harness.view.synthetic import run_folder

    return run_folder(tmp_path / "run", 12, seed=seed)


def test_rejudge_waits_for_no_one_and_never_writes_under_a_running_run(tmp_path, capsys):
    """Re-judging while a run writes left two judges' verdicts while asr.csv counted one: it takes the lock."""
    from harness.store.folder import locked

    run = synthetic_run(tmp_path)
    before = (run / "records.jsonl").read_bytes()
    with locked(run), pytest.raises(SystemExit) as exit_:
        rejudge_command.main([str(run), "judge=keyword"])
    assert exit_.value.code == 5 and "in use by" in capsys.readouterr().err
    assert (run / "records.jsonl").read_bytes() == before


def test_human_over_reads_the_rejudged_folders_labels_by_default(tmp_path, capsys, caplog):
    """`judge=human_over` without judge.labels stopped with "HydraConfig was not set"; labels from another run
    rewrote the tables as human-judged without a word."""
    from harness.store import labels

    run = synthetic_run(tmp_path)
    key = next(iter(RecordStore(run / "records.jsonl").load()))
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"format": labels.FORMAT, "labels": [{"key": key, "label": "harmful", "who": "ana"}]}))
    labels.import_file(export, [run])
    assert rejudge_command.main([str(run), "judge=human_over"]) == 0
    latest = RecordStore(run / "records.jsonl").load()
    assert latest[key].verdict.harmful is True and latest[key].verdict.judge.startswith("human_over@")
    other = synthetic_run(tmp_path / "other", seed=6)
    assert rejudge_command.main([str(other), "judge=human_over", f"judge.labels=[{run}]"]) == 0
    assert "none of these" in caplog.text and "has a human label" in caplog.text
