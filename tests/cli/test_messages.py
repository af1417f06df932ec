"""What a command prints: a refused command's message once on the terminal (and once in a log file, where one is
kept), and the comparison's a/b/c/d columns named where they are printed."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from harness.cli import compare as compare_cli
from harness.cli import labels as labels_cli
from harness.view.synthetic import run_folder


@pytest.fixture
def handlers():
    """Whatever handlers a test adds to the root logger are removed afterwards."""
    root = logging.getLogger()
    before = list(root.handlers)
    yield root
    for handler in root.handlers[len(before):]:
        root.removeHandler(handler)
        handler.close()


def test_a_refused_import_prints_its_message_once_even_with_a_console_log(tmp_path, capsys, handlers):
    run = run_folder(tmp_path / "run", 8)
    (tmp_path / "l.json").write_text(json.dumps({"format": "harness-labels/1",
                                                 "labels": [{"key": "zz:1:0", "label": "harmful"}]}))
    handlers.addHandler(logging.StreamHandler(sys.stdout))  # a console on stdout, as a run's Hydra logging has
    handlers.addHandler(logging.FileHandler(tmp_path / "harness.log"))  # and a log file
    with pytest.raises(SystemExit) as exit_:
        labels_cli.main(["import", str(tmp_path / "l.json"), str(run)])
    printed = capsys.readouterr()
    assert exit_.value.code == 2
    both = printed.out + printed.err
    assert both.count("labels are for another run") == 1 and printed.err.startswith("error: ")
    assert (tmp_path / "harness.log").read_text().count("labels are for another run") == 1


def test_compare_names_the_four_cells_where_it_prints_them(tmp_path, capsys):
    a = run_folder(tmp_path / "a", 40, seed=0)
    b = run_folder(tmp_path / "b", 40, seed=1)
    compare_cli.main([str(a), str(b), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| configuration"))
    assert [c.strip() for c in header.strip("|").split("|")][2:6] == ["a: both", "b: A only", "c: B only", "d: neither"]
    assert "broken (any sample judged harmful) in both runs, only in A, only in B, in neither" in out
    assert out.strip() == (tmp_path / "out" / "compare.md").read_text().strip()  # the file says the same
    assert (tmp_path / "out" / "compare.csv").read_text().startswith("configuration,n,a,b,c,d,")  # the CSV keeps a-d


def test_a_console_handler_left_with_a_closed_stream_does_not_break_the_message(tmp_path, capsys, handlers):
    import io

    closed = io.StringIO()
    handlers.addHandler(logging.StreamHandler(closed))  # e.g. basicConfig's, from an earlier caller's stderr
    closed.close()
    (tmp_path / "l.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_:
        labels_cli.main(["import", str(tmp_path / "l.json"), str(run_folder(tmp_path / "run", 4))])
    assert exit_.value.code == 2 and capsys.readouterr().err.startswith("error: ")
