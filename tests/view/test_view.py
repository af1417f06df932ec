"""The results browser's site: what it writes, checked against the records and asr.csv it reads."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import view as view_cli
from harness.errors import HarnessError
from harness.store.folder import run_folders
from harness.store.records import RecordStore
from harness.types import Record
from harness.view.collect import load_runs
from harness.view.site import build, configuration
from harness.view.synthetic import run_folder

STATIC = Path(__file__).resolve().parents[2] / "harness" / "view" / "static"


def payload(path: Path):
    """The value a data script hands to VIEW.put (its last argument): `VIEW.put("chunk", 3, [...]);`."""
    text = path.read_text(encoding="utf-8").rstrip()
    assert text.startswith("VIEW.put(") and text.endswith(");")
    return json.loads("[" + text[len("VIEW.put("):-2] + "]")[-1]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    run_folder(root / "sweep" / "a", 120, model="synth-a", seed=0)
    run_folder(root / "sweep" / "b", 120, model="synth-b", seed=1)
    return root


def test_site_holds_every_sample_and_the_tables(sweep, tmp_path):
    runs = load_runs([sweep])
    summary = build(runs, tmp_path / "site", chunk=50)
    meta, index = payload(tmp_path / "site" / "data" / "meta.js"), payload(tmp_path / "site" / "data" / "index.js")
    latest = {f: RecordStore(f / "records.jsonl").load() for f in run_folders([sweep])}
    total = sum(len(v) for v in latest.values())
    assert summary["samples"] == meta["samples"] == len(index["run"]) == total == 240
    assert meta["chunks"] == math.ceil(total / 50) == len(list((tmp_path / "site" / "data").glob("chunk-*.js")))
    transcripts = [s for p in sorted((tmp_path / "site" / "data").glob("chunk-*.js")) for s in payload(p)]
    keys = [f"{meta['lookups']['setup'][s]}:{r}:{n}" for s, r, n in zip(index["setup"], index["req"], index["smp"], strict=True)]
    assert keys == [t["key"] for t in transcripts]
    every = {k: r for records in latest.values() for k, r in records.items()}
    for t, code in zip(transcripts, index["v"], strict=True):
        record = every[t["key"]]
        assert t["completion"] == record.completion.text and t["prefill"] == record.completion.request.prefill
        assert code == (2 if record.verdict.error else int(record.verdict.harmful))
    # the overview rows are each run's asr.csv, row for row
    for i, folder in enumerate(sorted(latest)):
        table = pd.read_csv(folder / "asr.csv")
        rows = [r for r in meta["overview"] if r["_run"] == i]
        assert [r["asr"] for r in rows] == pytest.approx(list(table["asr"]))
        assert [r["n"] for r in rows] == list(table["n"])
        assert {f.split("/")[-1] for f in meta["runs"][i]["files"]} >= {"asr.csv", "asr.md", "asr_vs_k.png"}
        assert (tmp_path / "site" / meta["runs"][i]["files"][0]).is_file()


def test_judge_disagreement_follows_the_records_history(sweep, tmp_path):
    build(load_runs([sweep / "sweep" / "a"]), tmp_path / "site")
    index = payload(tmp_path / "site" / "data" / "index.js")
    meta = payload(tmp_path / "site" / "data" / "meta.js")
    verdicts: dict[str, dict[str, bool]] = {}
    for line in (sweep / "sweep" / "a" / "records.jsonl").read_text().splitlines():
        r = Record.model_validate_json(line)
        if r.verdict.harmful is not None and not r.verdict.error:
            verdicts.setdefault(r.key, {})[r.verdict.judge] = r.verdict.harmful
    expected = [int(len(set(verdicts.get(f"{meta['lookups']['setup'][s]}:{q}:{n}", {}).values())) > 1)
                for s, q, n in zip(index["setup"], index["req"], index["smp"], strict=True)]
    assert index["jd"] == expected and 0 < sum(expected) < len(expected)


def test_the_browser_takes_intervals_from_the_tables_never_its_own(sweep, tmp_path):
    """An asr.csv without intervals (an older version) is recomputed from the records by the tables' code."""
    folder = tmp_path / "run"
    shutil.copytree(next(iter(run_folders([sweep]))), folder)
    written = pd.read_csv(folder / "asr.csv")
    written.drop(columns=["asr_lo", "asr_hi"]).to_csv(folder / "asr.csv", index=False)
    (run,) = load_runs([folder])
    pd.testing.assert_series_equal(run.table["asr_lo"], written["asr_lo"], check_names=False)


def test_a_run_without_asr_csv_gets_its_table_from_the_records(sweep, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "records.jsonl").write_bytes((sweep / "sweep" / "a" / "records.jsonl").read_bytes())
    (run,) = load_runs([folder])
    assert list(run.table["asr"]) == pytest.approx(list(pd.read_csv(sweep / "sweep" / "a" / "asr.csv")["asr"]))


def test_configuration_labels_match_table_values():
    assert configuration({"k": 10}) == configuration({"k": 10.0}) == "k=10"
    assert configuration({"strategy": "top_p", "value": 0.05}) == "strategy=top_p, value=0.05"
    assert configuration({}) == "(none)"


def test_cli_on_a_run_a_sweep_and_a_tree(sweep, tmp_path, capsys):
    for path, runs in ((sweep / "sweep" / "a", 1), (sweep / "sweep", 2), (sweep, 2)):
        out = tmp_path / f"site{runs}{path.name}"
        assert view_cli.main([str(path), "--out", str(out)]) == 0
        assert f"of {runs} runs" in capsys.readouterr().out
        assert (out / "index.html").is_file() and (out / "assets" / "tabulator.min.js").is_file()


def test_a_folder_with_no_runs_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(HarnessError, match="no runs in"):
        run_folders([tmp_path])
    with pytest.raises(SystemExit) as exit_:
        view_cli.main([str(tmp_path / "missing"), "--out", str(tmp_path / "site")])
    assert exit_.value.code == 2 and "no such run folder" in capsys.readouterr().err


def test_the_page_loads_nothing_from_the_network():
    for name in ("index.html", "data.js", "app.js", "style.css"):
        text = (STATIC / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
    assert (STATIC / "tabulator.LICENSE.txt").read_text().startswith("The MIT License")


# ---- the queue, what the model saw, copies of a run ----

def test_the_index_marks_what_a_queue_drew(tmp_path):
    from harness.store import labels
    from harness.store.queue import write_queue

    run = run_folder(tmp_path / "runs" / "a", 60, seed=2)
    queue, _, count = write_queue([run], 8, seed=0, out=tmp_path / "q.csv")
    build(load_runs([run]), tmp_path / "site", chunk=16)
    meta, index = payload(tmp_path / "site" / "data" / "meta.js"), payload(tmp_path / "site" / "data" / "index.js")
    transcripts = [s for p in sorted((tmp_path / "site" / "data").glob("chunk-*.js")) for s in payload(p)]
    marked = {t["key"] for t, q in zip(transcripts, index["q"], strict=True) if q >= 0}
    assert marked == {key for _, key in labels.drawn(run)} and len(marked) == count
    assert meta["lookups"]["q"] == [queue] and meta["queues"] == [{"id": queue, "n": count}]
    assert meta["runs"][0]["queues"] == {queue: count}
    assert {t["queue"] for t in transcripts if t["key"] in marked} == {queue}
    assert {t["queue"] for t in transcripts if t["key"] not in marked} == {""}


def test_transcripts_show_the_messages_the_model_saw(tmp_path):
    from harness.view.synthetic import SYSTEM

    run_folder(tmp_path / "runs" / "new", 8, seed=0)
    run_folder(tmp_path / "runs" / "old", 8, seed=0, stored=False)  # written before the messages were stored
    build(load_runs([tmp_path / "runs"]), tmp_path / "site")
    transcripts = [s for p in sorted((tmp_path / "site" / "data").glob("chunk-*.js")) for s in payload(p)]
    new = [t for t in transcripts if t["run"] == "new"]
    old = [t for t in transcripts if t["run"] == "old"]
    assert len(new) == len(old) == 8
    for t in new:
        assert t["stored"] and t["messages"][0] == {"role": "system", "content": SYSTEM} and t["system"] == SYSTEM
        assert SYSTEM in t["prompt_text"] and t["prompt_text"].endswith(t["prefill"])
    for t in old:
        assert not t["stored"] and [m["role"] for m in t["messages"]] == ["user"] and t["prompt_text"] is None


def test_two_copies_of_a_run_are_told_apart(tmp_path):
    from harness.store import labels

    run = run_folder(tmp_path / "runs" / "a", 12, seed=0)
    shutil.copytree(run, tmp_path / "runs" / "b")
    key = next(iter(RecordStore(run / "records.jsonl").load()))
    export = {"format": labels.FORMAT, "labels": [{"key": key, "label": "harmful", "folder": labels.fingerprint(run)}]}
    (tmp_path / "e.json").write_text(json.dumps(export))
    labels.import_file(tmp_path / "e.json", [tmp_path / "runs"])
    build(load_runs([tmp_path / "runs"]), tmp_path / "site")
    meta, index = payload(tmp_path / "site" / "data" / "meta.js"), payload(tmp_path / "site" / "data" / "index.js")
    a, b = meta["runs"]
    assert (a["label"], b["label"]) == ("a", "b") and a["fingerprint"] != b["fingerprint"]
    assert a["fingerprint"] == labels.fingerprint(run) and str(tmp_path) not in json.dumps(meta)
    assert [h for h, r in zip(index["hl"], index["run"], strict=True) if h >= 0] == [1]  # a's label only, not b's
    assert [r for h, r in zip(index["hl"], index["run"], strict=True) if h >= 0] == [0]


def test_a_single_run_given_by_its_absolute_path_leaves_no_path_in_the_site(tmp_path, monkeypatch, capsys):
    run = run_folder(tmp_path / "deep" / "runs" / "none", 8, seed=0)
    monkeypatch.chdir(tmp_path / "deep")  # elsewhere than the run, so no relative path is shorter
    assert view_cli.main([str(run.resolve()), "--out", str(tmp_path / "site")]) == 0
    for script in (tmp_path / "site" / "data").glob("*.js"):
        assert str(tmp_path) not in script.read_text(encoding="utf-8"), script.name
    meta = payload(tmp_path / "site" / "data" / "meta.js")
    assert meta["runs"][0]["path"] == meta["runs"][0]["label"] == "none"
