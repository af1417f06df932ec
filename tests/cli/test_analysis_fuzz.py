"""Fuzz the analysis commands' inputs: every command fed generated bad files and arguments ends with
exit 0 or a one-line error (exit 2; the gate's 1 is "failed"), never a traceback, and writes nothing
outside its own output folder.

In-process (`main(argv)` and SystemExit), derandomised so CI sees the same examples every time;
bounded to a few seconds per command. README, "Failure behaviour", lists the exit codes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.analysis import report
from harness.cli import compare as compare_cli
from harness.cli import gate as gate_cli
from harness.cli import judge_eval as judge_eval_cli
from harness.cli import labels as labels_cli
from harness.cli import rejudge as rejudge_cli
from harness.cli import report as report_cli
from harness.cli import view
from harness.store import labels
from harness.store.records import RecordStore
from harness.view.synthetic import run_folder

FUZZ = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@st.composite
def bad_bytes(draw, valid: bytes) -> bytes:
    """A damaged version of a valid file: cut, bytes flipped, a line replaced, or something else entirely."""
    how = draw(st.sampled_from(["cut", "flip", "line", "bytes", "text", "json", "empty"]))
    if how == "cut" and valid:
        return valid[: draw(st.integers(0, len(valid) - 1))]
    if how == "flip" and valid:
        data = bytearray(valid)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "line" and valid:
        lines = valid.split(b"\n")
        lines[draw(st.integers(0, len(lines) - 1))] = draw(st.text(max_size=60)).encode("utf-8", "surrogatepass")
        return b"\n".join(lines)
    if how == "text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    if how == "json":
        return json.dumps(draw(JSON)).encode()
    if how == "empty":
        return b""
    return draw(st.binary(max_size=200))


def outcome(fn: Callable[[], object], capsys) -> tuple[int, str]:
    """Run a command's main: (exit code, stderr). Any exception but SystemExit fails the test (a traceback)."""
    try:
        result = fn()
        code = 0 if result is None else int(result)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def one_line_error(code: int, err: str, allowed: set[int]) -> None:
    assert code in allowed, f"exit {code}: {err[-500:]}"
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith(("error:", "usage:")) or ": error:" in line]
        assert errors, f"exit 2 without an error line: {err[-500:]}"


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """Two small runs of one benchmark (two models), their merged tables and a baseline."""
    root = tmp_path_factory.mktemp("pristine")
    run_folder(root / "runs" / "a", 24, model="m1", seed=1)
    run_folder(root / "runs" / "b", 24, model="m2", seed=2)
    report.write(list(RecordStore(root / "runs" / "a" / "records.jsonl").load().values())
                 + list(RecordStore(root / "runs" / "b" / "records.jsonl").load().values()), root / "merged")
    gate_cli.main([str(root / "merged"), "--baseline", str(root / "baseline.json"), "--write-baseline"])
    keys = list(RecordStore(root / "runs" / "a" / "records.jsonl").load())
    (root / "export.json").write_text(json.dumps({"format": labels.FORMAT, "labels": [
        {"key": k, "label": "harmful" if i % 2 else "not_harmful", "who": "ana", "when": "2026-12-01"}
        for i, k in enumerate(keys[:6])]}))
    (root / "labels.csv").write_text("goal,prompt,target_response,human_majority\n"
                                     + "".join(f"g{i},p{i},{'Sure, here' if i % 2 else 'I cannot help'},{i % 2}\n"
                                               for i in range(8)))
    return root


@pytest.fixture
def work(pristine, tmp_path) -> Callable[[], Path]:
    """A fresh copy of the pristine runs for each example (hypothesis runs many in one test)."""
    made = itertools.count()

    def fresh() -> Path:
        folder = tmp_path / f"w{next(made)}"
        shutil.copytree(pristine, folder)
        return folder

    return fresh


def put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@FUZZ
@given(data=st.data())
def test_gate_on_damaged_tables_and_baselines(work, capsys, data):
    work = work()
    target = data.draw(st.sampled_from(["baseline.json", "baseline.behaviors.csv", "merged/asr.csv",
                                        "merged/behaviors.csv"]))
    put(work / target, data.draw(bad_bytes((work / target).read_bytes())))
    code, err = outcome(lambda: gate_cli.main([str(work / "merged"), "--baseline", str(work / "baseline.json")]), capsys)
    one_line_error(code, err, {0, 1, 2})


@FUZZ
@given(value=st.sampled_from(["nan", "inf", "-inf", "-1", "1e309", "x", ""]),
       flag=st.sampled_from(["--tolerance-z", "--min-abs"]))
def test_gate_on_bad_numbers(work, capsys, value, flag):
    work = work()
    code, err = outcome(lambda: gate_cli.main([str(work / "merged"), "--baseline", str(work / "baseline.json"),
                                           flag, value]), capsys)
    if flag == "--tolerance-z" and value == "-1":
        one_line_error(code, err, {0, 1, 2})
    else:
        one_line_error(code, err, {2})


@FUZZ
@given(data=st.data())
def test_report_compare_and_view_on_damaged_records(work, capsys, data, tmp_path_factory):
    work = work()
    target = data.draw(st.sampled_from(["runs/a/records.jsonl", "runs/a/sampling.txt", "runs/a/contaminated.json"]))
    path = work / target
    put(path, data.draw(bad_bytes(path.read_bytes() if path.is_file() else b"")))
    runs = work / "runs"
    before = tree_digest(runs)
    out = tmp_path_factory.mktemp("out")
    for command in (lambda: report_cli.main([str(runs / "a"), str(runs / "b"), "--out", str(out / "report")]),
                    lambda: compare_cli.main([str(runs / "a"), str(runs / "b"), "--out", str(out / "compare")]),
                    lambda: view.main([str(runs), "--out", str(out / "view")])):
        code, err = outcome(command, capsys)
        one_line_error(code, err, {0, 2})
    assert tree_digest(runs) == before  # read-only: nothing the commands read was changed


@FUZZ
@given(data=st.data())
def test_labels_import_on_damaged_exports_and_stores(work, capsys, data):
    work = work()
    target = data.draw(st.sampled_from(["export.json", "runs/a/labels.jsonl"]))
    path = work / target
    if target.endswith("labels.jsonl"):
        labels_cli.main(["import", str(work / "export.json"), str(work / "runs" / "a")])
        capsys.readouterr()
    put(path, data.draw(bad_bytes(path.read_bytes())))
    code, err = outcome(lambda: labels_cli.main(["import", str(work / "export.json"), str(work / "runs" / "a")]), capsys)
    one_line_error(code, err, {0, 2})


@FUZZ
@given(data=st.data())
def test_judge_eval_on_damaged_label_files(work, capsys, data):
    work = work()
    suffix = data.draw(st.sampled_from([".csv", ".jsonl", ".json", ".tsv"]))
    path = work / f"labels{suffix}"
    put(path, data.draw(bad_bytes((work / "labels.csv").read_bytes())))
    code, err = outcome(lambda: judge_eval_cli.main(["--judge", "keyword", "--labels", str(path), "--out",
                                                 str(work / "je")]), capsys)
    one_line_error(code, err, {0, 2})


@FUZZ
@given(data=st.data())
def test_rejudge_on_damaged_records(work, capsys, data):
    work = work()
    path = work / "runs" / "a" / "records.jsonl"
    put(path, data.draw(bad_bytes(path.read_bytes())))
    code, err = outcome(lambda: rejudge_cli.main([str(work / "runs" / "a"), "judge=keyword"]), capsys)
    one_line_error(code, err, {0, 2, 3})


def calibration_file(work: Path, counts: dict) -> Path:
    from harness.analysis.tables import to_frame

    judge_id = to_frame(RecordStore(work / "runs" / "a" / "records.jsonl").load().values())["judge_id"].iloc[0]
    path = work / "cal" / f"{judge_id}.json"
    put(path, json.dumps({"judge_id": judge_id, "labels": "x.csv", **counts}).encode())
    return path


@pytest.mark.parametrize("counts", [dict(tp=0, fn=0, tn=5, fp=1), dict(tp=-3, fn=2, tn=5, fp=1),
                                    dict(tp=3, fn=2, tn=0, fp=0), dict(tp="x", fn=2, tn=5, fp=1), dict(tp=3)])
def test_report_with_an_impossible_calibration(work, capsys, caplog, counts, monkeypatch):
    work = work()
    path = calibration_file(work, counts)
    code, err = outcome(lambda: report_cli.main([str(work / "runs" / "a"), "--out", str(work / "r"), "--calibration",
                                             str(path)]), capsys)
    one_line_error(code, err, {2})
    # found in the calibration folder rather than asked for: the tables go on without a correction
    monkeypatch.setenv("HARNESS_CALIBRATION_DIR", str(path.parent))
    code, err = outcome(lambda: report_cli.main([str(work / "runs" / "a"), "--out", str(work / "r2")]), capsys)
    assert code == 0 and "no judge-corrected ASR" in caplog.text


@pytest.mark.parametrize("argv", [
    ["compare", "RUN_A", "RUN_A", "--power", "0.3", "0.5"],
    ["compare", "--power", "0.3", "0.5", "--target-power", "0"],
    ["compare", "--power", "0.3", "0.5", "--target-power", "nan"],
    ["compare", "--power", "nan", "0.5"],
    ["compare", "--power", "0.3", "0.5", "--discordant", "2"],
    ["compare", "RUN_A"],
    ["compare", "RUN_A", "RUN_B", "--out", "RUN_A"],
    ["compare", "RUN_A", "EMPTY"],
    ["report", "RUN_A", "--out", "RUN_A"],
    ["report", "RUN_A", "--out", "FILE"],
    ["report", "MISSING"],
    ["report", "EMPTY"],
    ["judge_eval", "--run", "RUN_A", "--labels", "LABELS"],
    ["judge_eval", "--labels", "LABELS", "--write-calibration", "--calibration-dir", "FILE"],
    ["judge_eval", "--labels", "LABELS", "--out", "FILE"],
    ["judge_eval", "--labels", "RUN_A"],
    ["labels", "import", "RUN_A", "RUN_A"],
    ["labels", "import", "EXPORT", "MISSING"],
    ["view", "RUN_A", "--out", "FILE"],
    ["view", "RUN_A", "--port", "80000", "--serve"],
    ["view", "MISSING"],
    ["rejudge", "RUN_A", "judge=no_such_judge"],
    ["rejudge", "MISSING"],
    ["rejudge", "RUN_A", "judge=human_over"],
    ["gate", "MISSING", "--baseline", "BASELINE"],
    ["gate", "RUN_A", "--baseline", "FILE/x.json", "--write-baseline"],
])
def test_bad_arguments_end_in_one_line(work, capsys, argv):
    work = work()
    (work / "FILE").write_text("not a folder")
    (work / "EMPTY").mkdir()
    (work / "EMPTY" / "records.jsonl").write_text("")
    names = {"RUN_A": work / "runs" / "a", "RUN_B": work / "runs" / "b", "FILE": work / "FILE",
             "MISSING": work / "missing", "EMPTY": work / "EMPTY", "LABELS": work / "labels.csv",
             "EXPORT": work / "export.json", "BASELINE": work / "baseline.json"}
    args = [str(names[a]) if a in names else str(names[a.split("/")[0]]) + "/" + a.split("/", 1)[1] if "/" in a
            and a.split("/")[0] in names else a for a in argv[1:]]
    mains = {"compare": compare_cli.main, "report": report_cli.main, "judge_eval": judge_eval_cli.main, "labels": labels_cli.main,
             "view": view.main, "rejudge": rejudge_cli.main, "gate": gate_cli.main}
    runs = work / "runs"
    before = tree_digest(runs)
    code, err = outcome(lambda: mains[argv[0]](args), capsys)
    allowed = {0, 2} if argv[0] == "rejudge" and argv[-1] == "judge=human_over" else {2}
    one_line_error(code, err, allowed)
    if argv[0] not in ("rejudge",):
        assert tree_digest(runs) == before, f"{argv}: changed a run folder"


STRANGE = "line\u2028sep\u2029par\x85next\x00nul \ud800lone \udfffsurrogates \U0001f600 \x1c\x1d\x1e\x0b\x0c end"


def test_strange_text_is_stored_reported_compared_and_viewed_intact(tmp_path, capsys):
    """A completion holding U+2028, U+0085, NUL or lone surrogates made its record unreadable: a re-run
    regenerated it, report found no records, compare raised, the browser could not write it."""
    from harness.types import Behavior, Completion, Message, Record, Request, Verdict

    def record(model: str, i: int) -> Record:
        behavior = Behavior(id=f"b{i}", prompt=f"ask {STRANGE}")
        request = Request(behavior_id=behavior.id, messages=(Message(role="user", content=behavior.prompt),),
                          attack="direct")
        return Record(run=f"r{model}", model=model, defense="none", benchmark="bench", behavior=behavior,
                      completion=Completion(request=request, text=f"{i} {STRANGE}"),
                      verdict=Verdict(harmful=i % 2 == 0, judge="keyword@x", rationale=STRANGE))

    for model in ("m1", "m2"):
        RecordStore(tmp_path / model / "records.jsonl").append([record(model, i) for i in range(4)])
        loaded = RecordStore(tmp_path / model / "records.jsonl").load()
        assert sorted(r.completion.text for r in loaded.values()) == [f"{i} {STRANGE}" for i in range(4)]
    assert report_cli.main([str(tmp_path / "m1"), str(tmp_path / "m2"), "--out", str(tmp_path / "report")]) is None
    assert list(pd.read_csv(tmp_path / "report" / "asr.csv")["n"]) == [4, 4]
    compare_cli.main([str(tmp_path / "m1"), str(tmp_path / "m2")])
    assert "n: harmful behaviors judged in both runs" in capsys.readouterr().out
    assert view.main([str(tmp_path / "m1"), str(tmp_path / "m2"), "--out", str(tmp_path / "site")]) == 0
    texts = []
    for chunk in sorted((tmp_path / "site" / "data").glob("chunk-*.js")):
        script = chunk.read_bytes().decode("utf-8")  # valid UTF-8, lone surrogates escaped
        payload = script[script.index(",", script.index(",") + 1) + 1: script.rindex(")")]
        texts += [t["completion"] for t in json.loads(payload)]
    assert sorted(texts) == sorted(f"{i} {STRANGE}" for i in range(4) for _ in range(2))


def test_read_only_commands_leave_a_run_being_written_as_it_is(work, capsys, tmp_path):
    """`compare` cut a records.jsonl whose writer had written half a line: the writer's tail became unreadable."""
    work = work()
    runs = work / "runs"
    with open(runs / "a" / "records.jsonl", "ab") as f:
        f.write(b'{"schema_version":1,"run":"half a li')  # a writer mid-line
    labels_cli.main(["import", str(work / "export.json"), str(runs / "a")])
    before = tree_digest(runs)
    capsys.readouterr()
    for argv, main in (
        ([str(runs / "a"), str(runs / "b"), "--out", str(tmp_path / "c")], compare_cli.main),
        ([str(runs), "--out", str(tmp_path / "r")], report_cli.main),
        ([str(runs), "--out", str(tmp_path / "v")], view.main),
        ([str(runs / "a"), "--baseline", str(work / "baseline.json")], gate_cli.main),
        (["--judge", "keyword", "--run", str(runs / "a"), "--out", str(tmp_path / "j")], judge_eval_cli.main),
    ):
        code, err = outcome(lambda main=main, argv=argv: main(argv), capsys)
        one_line_error(code, err, {0, 1, 2})
        assert tree_digest(runs) == before, f"{main.__module__} changed a run it read"
