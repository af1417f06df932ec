"""bench/first_run.py: repeated fresh runs each from their own cache, warm runs after, median and range."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from conftest import ROOT

SCRIPT = ROOT / "bench" / "first_run.py"


@pytest.fixture
def bench():
    before = set(sys.modules)
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("first_run", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        for name in {"common", "first_run"} - before:
            sys.modules.pop(name, None)
        sys.path.remove(str(SCRIPT.parent))


def test_three_fresh_runs_each_from_an_empty_cache_then_warm_runs(bench, monkeypatch, tmp_path):
    minutes = iter([7.0, 0.9, 9.0, 0.8, 6.0, 0.7, 0.8])
    calls, written = [], {}

    def run(label, cache, out_dir, timeout):
        calls.append((label, cache))
        return {"run": label, "finished": True, "minutes": next(minutes), "asr": "k=0: 0"}

    monkeypatch.setattr(bench, "run", run)
    monkeypatch.setattr(bench, "write", lambda name, rows, summary, notes: written.update(summary=summary) or tmp_path / "x")
    (tmp_path / "x").write_text("")
    monkeypatch.setattr(sys, "argv", ["first_run.py", "--fresh", "3", "--warm", "2", "--warm-each"])
    bench.main()
    labels = [label.split(" (")[0] for label, _ in calls]
    assert labels == ["fresh 1", "warm 1.1", "fresh 2", "warm 2.1", "fresh 3", "warm 3.1", "warm 3.2"]
    assert len({cache for label, cache in calls if label.startswith("fresh")}) == 3  # each its own empty cache
    assert [cache for label, cache in calls][0] == calls[1][1]  # a warm run reads its fresh run's cache


def test_the_summary_gives_the_median_and_range_and_the_aims(bench, monkeypatch, tmp_path):
    minutes = iter([7.0, 9.0, 6.0, 0.9, 0.7])
    written = {}
    monkeypatch.setattr(bench, "run", lambda label, cache, out_dir, timeout: {
        "run": label, "finished": True, "minutes": next(minutes), "asr": "k=0: 0"})
    monkeypatch.setattr(bench, "write", lambda name, rows, summary, notes: written.update(summary=summary) or tmp_path / "x")
    (tmp_path / "x").write_text("")
    monkeypatch.setattr(sys, "argv", ["first_run.py", "--fresh", "3", "--warm", "2"])
    bench.main()
    s = written["summary"]
    assert (s["fresh_runs"], s["fresh_median_min"], s["fresh_range_min"]) == (3, 7.0, [6.0, 9.0])
    assert (s["warm_runs"], s["warm_median_min"], s["warm_range_min"]) == (2, 0.8, [0.7, 0.9])
    assert s["fresh_aim_8_min_met"] is True and s["warm_aim_1_min_met"] is True and s["asr_identical_across_runs"]
