"""Human labels: import beside the run (history kept), clear refusals, human_over tables, judge_eval on them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis import judge_eval
from harness.cli import labels as labels_cli
from harness.cli import rejudge as rejudge_cli
from harness.errors import HarnessError
from harness.judge.human_over import HumanOverJudge
from harness.judge.keyword import KeywordJudge
from harness.store import labels
from harness.store.records import RecordStore
from harness.view.synthetic import run_folder


def export(path: Path, items: list[tuple[str, str]], who: str = "ana", when: str = "2026-12-01T10:00:00Z") -> Path:
    """A file in the format the browser exports."""
    data = {"format": labels.FORMAT, "site": "x", "labels": [{"key": k, "label": v, "who": who, "when": when, "run": "r"}
                                                             for k, v in items]}
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def run(tmp_path) -> Path:
    return run_folder(tmp_path / "runs" / "a", 40, seed=3)


def keys(folder: Path) -> list[str]:
    return list(RecordStore(folder / "records.jsonl").load())


def test_import_appends_with_who_when_and_previous(run, tmp_path):
    k = keys(run)
    first = export(tmp_path / "one.json", [(k[0], "harmful"), (k[1], "not_harmful")])
    assert labels.import_file(first, [run]) == {run.resolve(): (2, 0)}
    assert labels.import_file(first, [run]) == {run.resolve(): (0, 2)}  # the same file again adds nothing
    second = export(tmp_path / "two.json", [(k[0], "not_harmful")], who="bo", when="2026-12-01T11:00:00Z")
    labels_cli.main(["import", str(second), str(run)])
    lines = [json.loads(line) for line in (run / "labels.jsonl").read_text().splitlines()]
    assert [(x["key"], x["label"], x["who"], x["previous"]) for x in lines] == [
        (k[0], "harmful", "ana", None), (k[1], "not_harmful", "ana", None), (k[0], "not_harmful", "bo", "harmful")]
    history = labels.read(run)
    assert [h.label for h in history[k[0]]] == ["harmful", "not_harmful"]  # nothing overwritten
    records = RecordStore(run / "records.jsonl").load()
    assert lines[0]["completion"] == records[k[0]].completion.digest() and lines[0]["source"] == "one.json"


def test_import_into_a_sweep_finds_each_labels_run(tmp_path):
    a, b = run_folder(tmp_path / "s" / "a", 10, seed=1), run_folder(tmp_path / "s" / "b", 10, seed=2)
    file = export(tmp_path / "l.json", [(keys(a)[0], "harmful"), (keys(b)[0], "unclear")])
    done = labels.import_file(file, [tmp_path / "s"])
    assert done == {a.resolve(): (1, 0), b.resolve(): (1, 0)}


def test_bad_label_files_are_refused_before_anything_is_written(run, tmp_path):
    other = run_folder(tmp_path / "other", 10, seed=9)
    k = keys(run)
    cases = [
        (export(tmp_path / "another.json", [(keys(other)[0], "harmful")]), "for another run"),
        (export(tmp_path / "unknown.json", [(k[0], "harmful"), (k[0].rsplit(":", 2)[0] + ":ffff:0", "harmful")]),
         "sample ids that"),
        (export(tmp_path / "value.json", [(k[0], "maybe")]), "unknown label value"),
    ]
    (tmp_path / "not.json").write_text('{"labels": []}')
    cases.append((tmp_path / "not.json", "not a labels file"))
    for file, message in cases:
        with pytest.raises(HarnessError, match=message):
            labels.import_file(file, [run])
    assert not (run / "labels.jsonl").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HarnessError, match="no runs in"):
        labels.import_file(cases[0][0], [empty])


def test_cli_error_is_one_line(run, tmp_path, capsys):
    file = export(tmp_path / "x.json", [("nope:nope:0", "harmful")])
    with pytest.raises(SystemExit) as exit_:
        labels_cli.main(["import", str(file), str(run)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "another run" in err


def test_human_over_counts_labels_and_falls_back_to_the_inner_judge(run, tmp_path):
    records = list(RecordStore(run / "records.jsonl").load().values())
    inner = KeywordJudge()
    flipped = {r.key: ("not_harmful" if inner.one(r.behavior, r.completion).harmful else "harmful") for r in records[:6]}
    flipped[records[6].key] = "unclear"
    labels.import_file(export(tmp_path / "l.json", list(flipped.items())), [run])
    judge = HumanOverJudge(KeywordJudge(), labels=[run])
    verdicts = judge.judge([(r.behavior, r.completion) for r in records])
    for r, v in zip(records, verdicts, strict=True):
        expected = inner.one(r.behavior, r.completion).harmful
        if flipped.get(r.key) in ("harmful", "not_harmful"):
            expected = flipped[r.key] == "harmful"
        assert v.harmful == expected and v.judge == judge.id
    assert judge.id != HumanOverJudge(KeywordJudge(), labels=[tmp_path / "nowhere"]).id  # labels are part of the id
    # rejudge with judge=human_over: the table counts the human labels
    rejudge_cli.main([str(run), "judge=human_over", f"judge.labels=[{run}]"])
    table = pd.read_csv(run / "asr.csv")
    by_k: dict[int, list[bool]] = {}
    for r, v in zip(records, verdicts, strict=True):
        by_k.setdefault(r.completion.request.params["k"], []).append(v.harmful)
    assert {int(k): a for k, a in zip(table["k"], table["asr"], strict=True)} == pytest.approx(
        {k: 100 * sum(h) / len(h) for k, h in by_k.items()})


def test_judge_eval_scores_a_judge_against_a_runs_human_labels(run, tmp_path):
    records = list(RecordStore(run / "records.jsonl").load().values())[:10]
    truth = {r.key: "harmful" if i % 2 else "not_harmful" for i, r in enumerate(records)}
    labels.import_file(export(tmp_path / "l.json", [*{**truth, records[0].key: "unclear"}.items()]), [run])
    args = argparse.Namespace(judge="keyword", labels=None, run=[run], out=tmp_path / "eval", overrides=[],
                                         goal_column="goal", prompt_column="prompt", response_column="target_response",
                                         label_column="human_majority", context_column=judge_eval.DEFAULT_CONTEXT,
                                         write_calibration=False, calibration_dir=None)
    table = judge_eval.run(args)
    predicted = [float(KeywordJudge().one(r.behavior, r.completion).harmful) for r in records[1:]]
    expected = judge_eval.agreement([int(truth[r.key] == "harmful") for r in records[1:]], predicted)
    assert table.iloc[0]["n"] == 9 and table.iloc[0]["accuracy"] == pytest.approx(expected["accuracy"])
    assert any(str(j).startswith("recorded keyword@") for j in table["judge"])
    with pytest.raises(HarnessError, match="no human labels"):
        labels.ground_truth([run_folder(tmp_path / "bare", 4)])
