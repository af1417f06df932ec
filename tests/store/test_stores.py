"""records.jsonl and labels.jsonl as stores: any text round-trips, readers never write, writers do not race."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import labels as labels_cli
from harness.errors import HarnessError
from harness.store import labels
from harness.store.folder import run_folders
from harness.store.records import RecordStore, latest_by_key, read_samples
from harness.types import Behavior, Completion, Message, Record, Request, Verdict

# every code point, surrogates included, and the ones str.splitlines() (not JSON) treats as line ends
TRICKY = ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c", "\x00", "\r", "\n", "\ud800", "\udfff",
          "\udc80", "é", "😀"]
ANY_TEXT = st.text(alphabet=st.one_of(st.characters(codec=None, exclude_categories=()), st.sampled_from(TRICKY)))
BOUNDED = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def record(i: int, text: str = "t", prompt: str = "p", run: str = "r", harmful: bool = False) -> Record:
    b = Behavior(id=f"b{i}", prompt=prompt)
    request = Request(behavior_id=b.id, messages=(Message(role="user", content=f"ask {i}"),))
    return Record(run=run, model="m", defense="none", benchmark="bench", behavior=b,
                  completion=Completion(request=request, text=text), verdict=Verdict(harmful=harmful, judge="keyword@x"))


def as_json(text: str) -> str:
    """What JSON means by the text: a high surrogate directly before a low one is the character they encode."""
    return json.loads(json.dumps(text))


def export(path: Path, items: list[tuple[str, str]], who: str = "ana", when: str = "2026-12-01T10:00:00Z") -> Path:
    data = {"format": labels.FORMAT, "site": "x",
            "labels": [{"key": k, "label": v, "who": who, "when": when, "run": "r"} for k, v in items]}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def run_with(folder: Path, n: int, run: str = "r") -> list[str]:
    RecordStore(folder / "records.jsonl").append([record(i, run=run) for i in range(n)])
    return [r.key for r in (record(i, run=run) for i in range(n))]


# -- any text round-trips -------------------------------------------------------------------------------------------


@BOUNDED
@given(text=ANY_TEXT, prompt=ANY_TEXT)
def test_any_text_round_trips_through_the_records_file(text, prompt):
    with tempfile.TemporaryDirectory() as tmp:
        store = RecordStore(Path(tmp) / "records.jsonl")
        written = [record(0, text=text, prompt=prompt), record(1, text="after it")]
        store.append(written)
        loaded = store.load()
        assert list(loaded) == [r.key for r in written]  # the next record is not swallowed either
        assert loaded[written[0].key].completion.text == as_json(text)
        assert loaded[written[0].key].behavior.prompt == as_json(prompt)
        (first, second) = read_samples(store.path)
        assert (first.record.completion.text, first.record.behavior.prompt) == (as_json(text), as_json(prompt))
        assert second.record.completion.text == "after it"


@pytest.mark.parametrize("text", ["a\u2028b", "x\u2029\x85\x1c\x1d\x1e\x0b\x0cy", "nul\x00", "\ud800", "a\udc80b\udfff",
                                  "\udc00\ud800", "héllo 😀 世界"])
def test_line_separators_surrogates_and_nul_reload_exactly(tmp_path, text):
    store = RecordStore(tmp_path / "records.jsonl")
    store.append([record(0, text=text, prompt=text), record(1)])
    loaded = list(store.load().values())
    assert [r.completion.text for r in loaded] == [text, "t"] and loaded[0].behavior.prompt == text
    assert [s.record.completion.text for s in read_samples(store.path)] == [text, "t"]
    raw = store.path.read_bytes()
    assert raw.count(b"\n") == 2
    if text == "héllo 😀 世界":
        assert "héllo 😀 世界".encode() in raw  # non-ASCII stays readable, not \u-escaped
    # the shared reader takes text too (GCG test cases, PAIR steps read it so)
    assert [r.completion.text for r in latest_by_key(raw.decode(), Record, store.path, "records").values()] == [text, "t"]


@BOUNDED
@given(who=ANY_TEXT)
def test_any_reviewer_name_round_trips_through_labels(who):
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        keys = run_with(run, 3)
        file = export(Path(tmp) / "l.json", [(keys[0], "harmful"), (keys[1], "unclear")], who=who)
        assert labels.import_file(file, [run]) == {run.resolve(): (2, 0)}
        assert labels.import_file(file, [run]) == {run.resolve(): (0, 2)}  # read back equal: nothing added again
        history = labels.read(run)
        assert [history[k][-1].who for k in keys[:2]] == [as_json(who)] * 2
        assert [history[k][-1].label for k in keys[:2]] == ["harmful", "unclear"]
        assert (run / labels.FILE).read_bytes().count(b"\n") == 2


def test_a_line_separator_in_who_does_not_break_later_imports(tmp_path):
    run = tmp_path / "run"
    keys = run_with(run, 3)
    labels.import_file(export(tmp_path / "a.json", [(keys[0], "harmful")], who="ana\u2028bo\ud800"), [run])
    labels.import_file(export(tmp_path / "b.json", [(keys[1], "not_harmful")], who="cy"), [run])
    history = labels.read(run)
    assert history[keys[0]][0].who == "ana\u2028bo\ud800" and history[keys[1]][0].who == "cy"


# -- readers never write; the writer mends ---------------------------------------------------------------------------


def test_reading_a_half_written_line_leaves_the_file_as_it_is(tmp_path, caplog):
    store = RecordStore(tmp_path / "records.jsonl")
    store.append([record(i) for i in range(3)])
    with open(store.path, "ab") as f:
        f.write(record(3).model_dump_json().encode()[:60])  # a writer half-way through its line
    before = store.path.read_bytes()
    with caplog.at_level(logging.WARNING):
        assert len(store.load()) == 3
        assert len(read_samples(store.path)) == 3
        assert len(run_folders([tmp_path])) == 1
    assert store.path.read_bytes() == before  # byte-identical: nothing truncated under the writer
    assert "left as it is" in caplog.text and "dropping" not in caplog.text
    store.append([record(3)])  # an append (holding the lock: no one is mid-line) mends it first
    lines = store.path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and [Record.model_validate_json(line).behavior.id for line in lines[:-1]] == [
        "b0", "b1", "b2", "b3"]


def test_the_writer_repairs_explicitly(tmp_path, caplog):
    store = RecordStore(tmp_path / "records.jsonl")
    store.append([record(0)])
    whole = record(1).model_dump_json().encode()
    with open(store.path, "ab") as f:
        f.write(whole)  # whole, its newline missing (an editor): kept and finished
    assert len(store.load(repair=True)) == 2 and store.path.read_bytes().endswith(whole + b"\n")
    with open(store.path, "ab") as f:
        f.write(whole[:30])
    with caplog.at_level(logging.WARNING):
        assert len(store.load(repair=True)) == 2
    assert "dropping a partly written last line" in caplog.text and store.path.read_bytes().endswith(whole + b"\n")


def test_labels_read_skips_an_unfinished_last_line_without_writing(tmp_path):
    run = tmp_path / "run"
    keys = run_with(run, 3)
    labels.import_file(export(tmp_path / "a.json", [(keys[0], "harmful")]), [run])
    with open(run / labels.FILE, "ab") as f:
        f.write(b'{"key": "' + keys[1].encode())
    before = (run / labels.FILE).read_bytes()
    assert list(labels.read(run)) == [keys[0]] and (run / labels.FILE).read_bytes() == before
    assert labels.import_file(export(tmp_path / "b.json", [(keys[1], "unclear")]), [run]) == {run.resolve(): (1, 0)}
    assert [k for k in labels.read(run)] == [keys[0], keys[1]]


# -- concurrent writers ----------------------------------------------------------------------------------------------


def append_many(path: str, worker: int, count: int) -> None:
    store = RecordStore(path)
    for i in range(count):
        store.append([record(worker * 1000 + i, text=f"w{worker} " + "x" * 5000)])  # lines larger than a pipe buffer


def test_concurrent_appends_lose_nothing(tmp_path):
    path = tmp_path / "records.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=append_many, args=(str(path), w, 50)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    loaded = RecordStore(path).load()
    assert len(loaded) == 4 * 50 and path.read_bytes().count(b"\n") == 4 * 50


def import_when_ready(file: str, run: str, barrier) -> None:
    barrier.wait(30)
    labels.import_file(Path(file), [Path(run)])


def test_two_imports_at_once_add_each_label_once(tmp_path):
    run = tmp_path / "run"
    keys = run_with(run, 2000)
    file = export(tmp_path / "l.json", [(k, "harmful" if i % 2 else "not_harmful") for i, k in enumerate(keys)])
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    imports = [context.Process(target=import_when_ready, args=(str(file), str(run), barrier)) for _ in range(2)]
    for p in imports:
        p.start()
    for p in imports:
        p.join(60)
        assert p.exitcode == 0
    assert (run / labels.FILE).read_bytes().count(b"\n") == 2000
    assert sorted(labels.read(run)) == sorted(keys)


# -- labels files that are wrong ---------------------------------------------------------------------------------------


def test_a_key_named_twice_is_refused_or_collapsed(tmp_path):
    run = tmp_path / "run"
    keys = run_with(run, 3)
    data = {"format": labels.FORMAT, "labels": [{"key": keys[0], "label": "harmful"}, {"key": keys[0], "label": "unclear"},
                                                 {"key": keys[1], "label": "harmful"}]}
    (tmp_path / "clash.json").write_text(json.dumps(data))
    with pytest.raises(HarnessError, match=f"more than once with different labels: {keys[0]};") as error:
        labels.import_file(tmp_path / "clash.json", [run])
    assert "\n" not in str(error.value) and not (run / labels.FILE).exists()
    same = export(tmp_path / "same.json", [(keys[0], "harmful"), (keys[0], "harmful"), (keys[1], "unclear")])
    assert labels.import_file(same, [run]) == {run.resolve(): (2, 0)}
    assert labels.import_file(same, [run]) == {run.resolve(): (0, 2)}  # and nothing at the next import
    assert (run / labels.FILE).read_bytes().count(b"\n") == 2


def test_invalid_utf8_in_labels_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    keys = run_with(run, 3)
    labels.import_file(export(tmp_path / "a.json", [(keys[0], "harmful")]), [run])
    with open(run / labels.FILE, "ab") as f:
        f.write(b'{"key": "\xff\xfe", "label": "harmful"}\n')
    with pytest.raises(HarnessError, match=r"labels\.jsonl:2: not UTF-8"):
        labels.read(run)
    before = (run / labels.FILE).read_bytes()
    with pytest.raises(HarnessError, match=r"labels\.jsonl:2: not UTF-8"):
        labels.import_file(export(tmp_path / "b.json", [(keys[1], "harmful")]), [run])
    assert (run / labels.FILE).read_bytes() == before


def test_a_folder_as_the_labels_file_is_a_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    run_with(run, 2)
    (tmp_path / "folder").mkdir()
    with pytest.raises(SystemExit) as exit_:
        labels_cli.main(["import", str(tmp_path / "folder"), str(run)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "is a folder" in err


def test_a_setup_holding_colons_is_matched_whole(tmp_path):
    run = tmp_path / "run"
    keys = run_with(run, 2, run="org/model:v1")
    other = record(0, run="org/model:v2").key  # the same set-up name up to its first ':'
    with pytest.raises(HarnessError, match="for another run"):
        labels.import_file(export(tmp_path / "o.json", [(other, "harmful")]), [run])
    assert labels.import_file(export(tmp_path / "l.json", [(keys[0], "harmful")]), [run]) == {run.resolve(): (1, 0)}


def test_run_folders_resolves_symlinks_and_names_each_run_once(tmp_path):
    run = tmp_path / "runs" / "a"
    run_with(run, 1)
    os.symlink(run, tmp_path / "link")
    assert run_folders([run, tmp_path / "link", tmp_path / "runs", tmp_path / "link" / "records.jsonl"]) == [run.resolve()]
