"""The browser's export on the import side: labels on queued samples are stored as queued (and a claimed queue is
checked against the folder's draw), and labels made on two copies of a run go back to their own copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import call_main

from harness.cli import labels as labels_command
from harness.errors import HarnessError
from harness.store import labels
from harness.store.queue import write_queue
from harness.store.records import RecordStore
from harness.view.synthetic import run_folder


@pytest.fixture
def run(tmp_path) -> Path:
    return run_folder(tmp_path / "runs" / "a", 40, seed=5)


def export(path: Path, items: list[dict]) -> Path:
    """A file as the browser exports it: key, label, who, when, run, folder (fingerprint) and, when drawn, queue."""
    path.write_text(json.dumps({"format": labels.FORMAT, "site": "s", "labels": [
        {"who": "ana", "when": "2026-12-07T10:00:00Z", "run": "a", **item} for item in items]}))
    return path


def drawn(folder: Path) -> list[tuple[str, str]]:
    return labels.drawn(folder)


def test_a_queued_label_from_the_browser_is_stored_as_queued(run, tmp_path):
    queue, _, _ = write_queue([run], 6, seed=1, out=tmp_path / "q.csv")
    (q, key), *_ = drawn(run)
    assert q == queue and not labels.read(run)
    file = export(tmp_path / "e.json", [{"key": key, "label": "harmful", "queue": queue,
                                         "folder": labels.fingerprint(run)}])
    assert labels.import_file(file, [run]) == {run.resolve(): (1, 0)}
    (stored,) = labels.read(run)[key]
    assert (stored.queue, stored.label) == (queue, "harmful")


def test_a_label_claiming_a_queue_that_did_not_draw_its_sample_is_refused(run, tmp_path, capsys):
    queue, _, _ = write_queue([run], 6, seed=1, out=tmp_path / "q.csv")
    picked = {key for _, key in drawn(run)}
    stray = next(k for k in RecordStore(run / "records.jsonl").load() if k not in picked)
    file = export(tmp_path / "e.json", [{"key": stray, "label": "harmful", "queue": queue}])
    before = (run / "labels.jsonl").exists()
    code, out, err = call_main(labels_command.main, capsys, "import", file, run)
    assert code == 2 and "their queue did not draw" in err and stray in err and "row 0" not in err
    assert err.count("\n") == 1 and not out and (run / "labels.jsonl").exists() == before


def test_labels_of_two_copies_go_back_to_their_own_copy(run, tmp_path):
    copy = tmp_path / "runs" / "a-copy"
    shutil.copytree(run, copy)
    key = next(iter(RecordStore(run / "records.jsonl").load()))
    file = export(tmp_path / "e.json", [
        {"key": key, "label": "harmful", "folder": labels.fingerprint(run), "run": "a"},
        {"key": key, "label": "not_harmful", "folder": labels.fingerprint(copy), "run": "a-copy"},
    ])
    assert labels.import_file(file, [tmp_path / "runs"]) == {run.resolve(): (1, 0), copy.resolve(): (1, 0)}
    assert labels.read(run)[key][-1].label == "harmful" and labels.read(copy)[key][-1].label == "not_harmful"
    # both copies' labels into one of them, moved where neither fingerprint matches: refused, nothing written
    moved = tmp_path / "elsewhere"
    shutil.copytree(run, moved)
    (moved / "labels.jsonl").unlink()
    with pytest.raises(HarnessError, match="two different labels in one run folder"):
        labels.import_file(file, [moved])
    assert not (moved / "labels.jsonl").exists()


def test_an_export_without_fingerprints_still_imports_into_every_holder(run, tmp_path):
    """Files exported before the fingerprint existed: the label goes to each folder holding the sample, as before."""
    copy = tmp_path / "runs" / "b"
    shutil.copytree(run, copy)
    key = next(iter(RecordStore(run / "records.jsonl").load()))
    file = export(tmp_path / "e.json", [{"key": key, "label": "unclear"}])
    assert labels.import_file(file, [tmp_path / "runs"]) == {run.resolve(): (1, 0), copy.resolve(): (1, 0)}
