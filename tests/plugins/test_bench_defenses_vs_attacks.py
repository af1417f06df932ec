"""bench/defenses_vs_attacks.py: its cells compose into the intended harness configs, and on the tiny model
(`--tiny`) every cell runs and each table row is computed from that cell's run records."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from harness.analysis.stats import wilson
from harness.store.records import RecordStore

SCRIPT = ROOT / "bench" / "defenses_vs_attacks.py"


@pytest.fixture(scope="module")
def bench():
    before = set(sys.modules)
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("defenses_vs_attacks", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        yield module
    finally:
        for name in {"defenses_vs_attacks", "common", "first_run"} - before:  # bench/'s top-level modules
            sys.modules.pop(name, None)
        sys.path.remove(str(SCRIPT.parent))


def test_every_cell_composes_into_the_intended_run(bench, tmp_path):
    from harness.config import compose

    args = bench.resolve(bench.parser().parse_args(["--pair", "--safety-signal"]))
    cells = {c.label: c for c in bench.plan(args, tmp_path)}
    assert list(cells) == ["1a", "1b", "1c", "1d", "2a", "2b", "2c", "3a", "3b", "3c", "4"]
    cfg = {label: compose(c.overrides) for label, c in cells.items()}
    for label in ("1a", "1b", "1c", "2a", "2b", "2c", "4"):
        assert cfg[label].model.name == "smollm2-aligned" and cfg[label].limit == 10
        assert cfg[label].benchmark._target_.endswith("AdvBench") and cfg[label].sampling.max_tokens == 64
    for label in ("1a", "1b", "1c", "2c", "3a", "3b", "3c"):
        gcg = cfg[label].attack
        assert (gcg.steps, gcg.search_width, gcg.topk) == (20, 64, 64)
    # non-adaptive cells share one test-case store (1b reuses 1a's suffixes, 2c evaluates them); adaptive ones do not
    assert cfg["1a"].attack.store == cfg["1b"].attack.store == cfg["2c"].attack.suffixes != cfg["1c"].attack.store
    assert not cfg["1b"].attack.adaptive and cfg["1c"].attack.adaptive and cfg["3b"].attack.adaptive
    assert cfg["1b"].defense._target_.endswith("PerplexityFilter") and cfg["1b"].defense.reference.name == "smollm2"
    assert cfg["1d"].benchmark.split == "benign" and cfg["1d"].limit is None
    assert cfg["1d"].attack._target_.endswith("DirectAttack") and cfg["1d"].defense._target_.endswith("PerplexityFilter")
    assert cfg["2b"].attack.lengths == [10] and cfg["2b"].defense.copies == 10
    assert cfg["3a"].model.name == "smollm2" and cfg["3a"].defense._target_.endswith("SafetySignal")
    assert cfg["3a"].engine._target_.endswith("HFEngine") and cfg["3a"].attack.store != cfg["3b"].attack.store
    assert cfg["3c"].attack.adaptive and len({cfg[c].attack.store for c in ("3a", "3b", "3c")}) == 3
    assert (cfg["3b"].defense.adaptive_checks, cfg["3c"].defense.adaptive_checks) == ("first", "all")
    assert (cfg["4"].attack.streams, cfg["4"].attack.iterations, cfg["4"].attack.attacker.name) == (3, 3, "smollm2")


def run_bench(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def cell_records(folder):
    run = json.loads((folder / "run.json").read_text())["run_hash"]
    return [r for r in RecordStore(folder / "records.jsonl").load().values() if r.run == run]


def from_records(folder):
    """The row's numbers recomputed from the raw records, independently of the script."""
    recs = cell_records(folder)
    harmful = [r for r in recs if r.behavior.label == "harmful" and not r.verdict.error]
    k, n = sum(bool(r.verdict.harmful) for r in harmful), len(harmful)
    blocked = sum(bool(r.completion.blocked) for r in recs)
    costs = {}
    for key in ("queries", "forward", "backward"):
        values = [getattr(r.completion.request.cost, key) for r in recs if r.completion.request.cost]
        values = [v for v in values if v]
        costs[key] = round(sum(values) / len(values), 1) if values else None
    costs["eval_tokens"] = round(sum(r.completion.completion_tokens for r in recs) / len(recs), 1)
    return recs, k, n, blocked, costs


@pytest.mark.slow  # ~10 harness runs on the tiny model: ~1.5-2 min on 2 cores
def test_tiny_run_reports_every_cell_from_its_records(tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    args = ("--tiny", "--pair", "--safety-signal", "--out-dir", str(out), "--runs-dir", str(runs))
    done = run_bench(*args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "estimates for 2 idle cores" in done.stdout and "~" in done.stdout.split("cell 1a")[0]
    payload = json.loads((out / "defenses_vs_attacks_tiny.json").read_text())
    md = (out / "defenses_vs_attacks_tiny.md").read_text()
    assert "no difference" in md and "load average" in md and "GCG 2 steps, search width 16" in md
    rows = {r["cell"]: r for r in payload["rows"]}
    assert set(rows) == {"1a", "1b", "1c", "1d", "2a", "2b", "2c", "4"}
    cells = payload["summary"]["cells"]
    assert cells["3a"]["status"].startswith("skipped: the tiny random model") and "3a" not in rows
    [root] = runs.glob("tiny_n2_*")

    for label, row in rows.items():
        folder = root / cells[label]["folder"]
        recs, k, n, blocked, costs = from_records(folder)
        assert {key: row[key] for key in costs} == pytest.approx(costs)
        if label == "1d":  # benign: no ASR; the block rate is the filter's false-positive rate
            assert row["asr"] is None and row["n"] == len(recs) == 4
            lo, hi = wilson(blocked, len(recs))
            assert row["blocked"] == round(100 * blocked / len(recs), 1)
            assert row["blocked_95"] == f"[{100 * lo:.1f}, {100 * hi:.1f}]"
            continue
        lo, hi = wilson(k, n)
        assert (row["n"], row["asr"], row["asr_95"]) == (n, round(100 * k / n, 1), f"[{100 * lo:.1f}, {100 * hi:.1f}]")
        assert n == 2 and (cells[label]["asr_lo"], cells[label]["asr_hi"]) == pytest.approx((100 * lo, 100 * hi))
        assert (row["blocked"] is None) == (row["defense"] == "none")
        if row["blocked"] is not None:
            assert row["blocked"] == round(100 * blocked / len(recs), 1)
    # GCG's cost columns come from the test cases (16 candidates x 2 steps); 1b reuses 1a's suffixes, 2c evaluates them
    assert rows["1a"]["forward"] == rows["1b"]["forward"] == 32 and rows["1a"]["backward"] == 2
    assert rows["1c"]["adaptive"] == "yes" and rows["1b"]["adaptive"] == "no" and rows["2c"]["adaptive"] == "no"
    suffixes = {label: {r.behavior.id: r.completion.request.messages[-1].content
                        for r in cell_records(root / cells[label]["folder"])} for label in ("1a", "1b", "2c")}
    assert suffixes["1a"] == suffixes["1b"] == suffixes["2c"]
    assert 2 <= rows["4"]["queries"] <= 4 and rows["4"]["adaptive"] == "yes"  # 2 streams x 2 iterations at most
    assert {(p["cell_a"], p["cell_b"]) for p in payload["summary"]["paired"]} == {("1a", "1b"), ("1b", "1c"), ("2a", "2b"),
                                                                                   ("1a", "2c")}

    # a verdict changed in a cell's records changes its row: nothing is hard-coded
    folder = root / cells["2a"]["folder"]
    [first, *_] = cell_records(folder)
    flipped = first.model_copy(update={"verdict": first.verdict.model_copy(update={"harmful": not first.verdict.harmful})})
    RecordStore(folder / "records.jsonl").append([flipped])
    _, k, n, _, _ = from_records(folder)
    again = run_bench(*args, "--report-only")
    assert again.returncode == 0 and "done: re-run reuses it" in again.stdout
    row = {r["cell"]: r for r in json.loads((out / "defenses_vs_attacks_tiny.json").read_text())["rows"]}["2a"]
    assert row["asr"] == round(100 * k / n, 1) != rows["2a"]["asr"]

    # re-running a finished cell reuses its completions
    rerun = run_bench(*args, "--only", "2b")
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    counts = json.loads((root / cells["2b"]["folder"] / "run.json").read_text())["counts"]
    assert counts["generated"] == 0 and counts["reused"] == 2
