"""The results browser's site builder: it writes only into its own folder, refuses bad arguments with one
line (no traceback), and writes keys, paths and any completion text safely into the data scripts."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import view as view_cli
from harness.errors import HarnessError
from harness.store.records import RecordStore, Sample
from harness.view.collect import Run, load_runs
from harness.view.site import build
from harness.view.synthetic import records, run_folder

MARKER = ".harness-site"  # the file that marks a folder the site builder made


def payload(path: Path):
    """The value a data script hands to VIEW.put (its last argument), read as UTF-8."""
    text = path.read_bytes().decode("utf-8").rstrip()
    assert text.startswith("VIEW.put(") and text.endswith(");")
    return json.loads("[" + text[len("VIEW.put("):-2] + "]")[-1]


def tree(root: Path) -> dict[str, str]:
    """Every path under root: a file's sha256, a link's target, or 'dir'."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def refused(argv: list[str], capsys) -> str:
    """main(argv) exits 2 with one `error:` line and no traceback; that line."""
    with pytest.raises(SystemExit) as exit_:
        view_cli.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def results(tmp_path) -> Path:
    """T/runs/x and T/runs/y: two small runs with their tables."""
    run_folder(tmp_path / "T" / "runs" / "x", 12, model="synth-x", seed=0)
    run_folder(tmp_path / "T" / "runs" / "y", 12, model="synth-y", seed=1)
    return tmp_path / "T"


# ---- 1. the builder writes only into its own folder ----

def test_out_equal_to_the_results_tree_is_refused_and_nothing_changes(results, capsys):
    before = tree(results)
    line = refused([str(results), "--out", str(results)], capsys)
    assert str(results) in line
    assert tree(results) == before


@pytest.mark.parametrize("where", ["runs/x", "runs/x/site", "runs", "file.txt", "notes", "marked-with-a-run"])
def test_an_out_the_builder_did_not_make_is_refused_before_anything_is_written(results, capsys, where):
    (results / "file.txt").write_text("mine\n")
    (results / "notes").mkdir()
    (results / "notes" / "todo.md").write_text("keep me\n")
    marked = results / "marked-with-a-run"
    marked.mkdir()
    (marked / MARKER).write_text("harness-view-site/1\n")
    run_folder(marked / "inner", 4)  # a run someone put inside an old site: its records are not the site's
    before = tree(results)
    line = refused([str(results / "runs" / "x"), "--out", str(results / where)], capsys)
    assert tree(results) == before, line
    expected = {"runs/x": "run folder", "runs/x/site": "run folder", "runs": "holds the input",
                "file.txt": "not a folder", "notes": "holds files it did not make; choose an empty or new folder",
                "marked-with-a-run": "records.jsonl"}[where]
    assert expected in line


def test_build_itself_refuses_a_run_folder(results):
    before = tree(results)
    with pytest.raises(HarnessError, match="run folder"):
        build(load_runs([results / "runs" / "x"]), results / "runs" / "x")
    assert tree(results) == before


def test_a_new_folder_gets_the_marker_and_a_rebuild_replaces_only_the_sites_parts(results, tmp_path):
    out = tmp_path / "site"
    runs = load_runs([results])
    build(runs, out, chunk=5)
    assert (out / MARKER).read_text().startswith("harness-view-site/")
    assert len(list((out / "data").glob("chunk-*.js"))) == 5  # 24 samples
    (out / "README.txt").write_text("the reviewer's notes\n")
    (out / "data" / "stale.js").write_text("old\n")
    summary = build(runs, out, chunk=50)
    assert summary["chunks"] == 1 and sorted(p.name for p in (out / "data").iterdir()) == [
        "chunk-00000.js", "index.js", "meta.js"]
    assert (out / "README.txt").read_text() == "the reviewer's notes\n"


def test_an_empty_folder_is_used(results, tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    assert view_cli.main([str(results), "--out", str(out)]) == 0
    assert (out / MARKER).is_file() and (out / "index.html").is_file()


def test_a_rebuild_removes_a_link_among_its_parts_not_what_it_points_to(results, tmp_path):
    out = tmp_path / "site"
    build(load_runs([results]), out)
    before = tree(results)
    for part in ("runs", "data", "assets"):
        os.rename(out / part, tmp_path / f"old-{part}")
    (out / "runs").symlink_to(results / "runs", target_is_directory=True)
    (out / "data").symlink_to(results, target_is_directory=True)
    (out / "index.html").unlink()
    (out / "index.html").symlink_to(results / "runs" / "x" / "asr.csv")
    build(load_runs([results]), out)
    assert tree(results) == before
    assert not (out / "runs").is_symlink() and (out / "runs" / "0" / "asr.csv").is_file()


# ---- 2. bad arguments: one line, before the site is built ----

@pytest.mark.parametrize("option", [["--port", "80000"], ["--port", "-1"], ["--chunk", "0"], ["--chunk", "-5"]])
def test_bad_numbers_are_refused_before_building(results, tmp_path, capsys, option):
    out = tmp_path / "site"
    line = refused([str(results), "--out", str(out), "--serve", *option], capsys)
    assert option[0] in line and option[1] in line
    assert not out.exists()


def test_a_busy_port_is_named_and_nothing_is_built(results, tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = tmp_path / "site"
        line = refused([str(results), "--out", str(out), "--serve", "--port", str(port)], capsys)
    assert f"port {port} on 127.0.0.1 is in use; choose another with --port, or --port 0 for a free one" in line
    assert not out.exists()


def test_out_pointing_at_a_file_is_one_line(results, tmp_path, capsys):
    target = tmp_path / "site.html"
    target.write_text("<p>not a site</p>")
    assert "not a folder" in refused([str(results), "--out", str(target)], capsys)
    assert target.read_text() == "<p>not a site</p>"
    assert "not a folder" in refused([str(results), "--out", str(target / "sub")], capsys)


# ---- 3. a set-up holding a colon ----

def test_a_set_up_with_a_colon_keeps_its_samples(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    made = [r.model_copy(update={"run": "org:model", "model": "org:model"}) for r in records(8, model="org:model")]
    RecordStore(folder / "records.jsonl").append(made)
    out = tmp_path / "site"
    assert view_cli.main([str(folder), "--out", str(out)]) == 0
    meta, index = payload(out / "data" / "meta.js"), payload(out / "data" / "index.js")
    transcripts = payload(out / "data" / "chunk-00000.js")
    assert meta["lookups"]["setup"] == ["org:model"] and meta["samples"] == len(index["run"]) == 8
    keys = [f"{meta['lookups']['setup'][s]}:{q}:{n}" for s, q, n in zip(index["setup"], index["req"], index["smp"],
                                                                         strict=True)]
    assert keys == [t["key"] for t in transcripts] and set(keys) == {r.key for r in made}


# ---- 4. no absolute paths in the site ----

def test_meta_names_runs_by_their_relative_label(results, tmp_path, capsys):
    out = tmp_path / "site"
    assert view_cli.main([str(results), "--out", str(out)]) == 0
    meta = payload(out / "data" / "meta.js")
    assert [r["path"] for r in meta["runs"]] == [r["label"] for r in meta["runs"]] == ["x", "y"]
    for script in (out / "data").glob("*.js"):
        assert str(tmp_path) not in script.read_text(encoding="utf-8"), script.name


# ---- 5. any completion text, intact and valid UTF-8 ----

AWKWARD = "line\u2028sep\u2029para\u0085nel\x00nul \ud800 lone \udfff low \U0001F600 \"quoted\" </script>"


def test_awkward_text_is_written_intact(tmp_path):
    base = records(3, second_judge=0)
    made = [r.model_copy(update={"completion": r.completion.model_copy(update={"text": AWKWARD + str(i)})})
            for i, r in enumerate(base)]
    samples = [Sample(r, {r.verdict.judge: r.verdict}, r.key) for r in made]
    run = Run(folder=tmp_path / "run", label="run", samples=samples, table=pd.DataFrame())
    out = tmp_path / "site"
    build([run], out, title="title \ud83d \u2028")
    raw = (out / "data" / "chunk-00000.js").read_bytes()
    text = raw.decode("utf-8")  # strict: no lone surrogate could be encoded
    assert "\u2028" not in text and "\u2029" not in text and "\x85" not in text and "\x00" not in text
    completions = sorted(t["completion"] for t in payload(out / "data" / "chunk-00000.js"))
    assert completions == [AWKWARD + str(i) for i in range(3)]
    assert payload(out / "data" / "meta.js")["title"] == "title \ud83d \u2028"


def test_awkward_text_through_records_jsonl(tmp_path, capsys):
    text = AWKWARD.replace("\ud800", "").replace("\udfff", "")  # records.jsonl itself cannot hold lone surrogates
    folder = tmp_path / "run"
    folder.mkdir()
    made = [r.model_copy(update={"completion": r.completion.model_copy(update={"text": text})})
            for r in records(2, second_judge=0)]
    RecordStore(folder / "records.jsonl").append(made)
    out = tmp_path / "site"
    assert view_cli.main([str(folder), "--out", str(out)]) == 0
    assert [t["completion"] for t in payload(out / "data" / "chunk-00000.js")] == [text, text]
    raw = (out / "data" / "chunk-00000.js").read_text(encoding="utf-8")
    assert "\u2028" not in raw and "\u2029" not in raw and "\x85" not in raw  # escaped, as \\u2028 ...


def test_a_site_an_earlier_version_built_is_rebuilt_without_a_marker(results, tmp_path, capsys):
    out = tmp_path / "old-site"
    build(load_runs([results]), out)
    (out / MARKER).unlink()  # as an earlier version left it: only the site's parts
    assert view_cli.main([str(results), "--out", str(out)]) == 0
    assert (out / MARKER).is_file()
    (out / MARKER).unlink()
    (out / "notes.txt").write_text("mine\n")  # something it did not make: refused
    with pytest.raises(SystemExit):
        view_cli.main([str(results), "--out", str(out)])
    assert (out / "notes.txt").read_text() == "mine\n"
