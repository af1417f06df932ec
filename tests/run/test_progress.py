"""Progress when output is not a terminal: plain log lines per stage (sampling answers, training,
generating), each with a count and an ETA, and no carriage returns or escape codes."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

from harness.util.progress import LogLines, progress


def test_log_lines_start_throttle_and_end(monkeypatch, caplog):
    monkeypatch.setenv("HARNESS_PROGRESS_INTERVAL", "3600")
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    with caplog.at_level(logging.INFO, logger="harness.util.progress"):
        bar = progress(total=5, desc="generating [m]", unit="seq")
        assert isinstance(bar, LogLines)  # pytest's captured stderr is not a terminal
        with bar:
            for _ in range(5):
                bar.update(1)
                bar.set_postfix(loss="0.5")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # the start, then (inside the interval) only the end
    assert lines[0].startswith("generating [m]: 0/5 seq (0%)") and "ETA" in lines[0]
    assert lines[1].startswith("generating [m]: 5/5 seq (100%)") and lines[1].endswith("loss=0.5")


def test_tqdm_disable_silences_it(monkeypatch, caplog):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    with caplog.at_level(logging.INFO, logger="harness.util.progress"), progress(total=3, desc="x") as bar:
        bar.update(3)
    assert not caplog.records


@pytest.mark.slow
def test_a_training_run_logs_each_stage_cleanly(tiny, data_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"} | {"HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-m", "harness", "model=local", f"model.path={tiny.folder}", "model.name=tiny",
         "defense=safety_sft", "defense.n_harmful=4", "defense.n_benign=4", "defense.answer_tokens=4",
         "defense.train.epochs=1", "defense.train.batch_size=4", "attack=direct", "limit=2", "sampling.max_tokens=2",
         f"data_dir={data_dir}", f"out_dir={tmp_path / 'run'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "\r" not in text and "\x1b" not in text
    for stage in ("sampling answers [tiny]", "training [tiny]", "generating [tiny-aligned]"):
        ends = re.findall(rf"{re.escape(stage)}: (\d+)/(\d+) \w+ \(100%\)", text)
        assert ends and ends[-1][0] == ends[-1][1], f"no finished progress line for {stage}:\n{text[-3000:]}"
        assert f"{stage}: 0/" in text  # and its start
