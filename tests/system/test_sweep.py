"""Sweeps: a local --multirun writes one run folder per job under the sweep dir, and
`python -m harness report <sweep dir>` merges them into one table and plot."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, harness_cli, harness_main


@pytest.mark.slow
def test_local_multirun_over_two_attacks_then_merged_report(data_dir, tiny, tmp_path):
    sweep = tmp_path / "sweep"
    run = harness_cli(
        "--multirun", "attack=prefill,decoding", "model=local", f"model.path={tiny.folder}", "model.name=tiny",
        f"data_dir={data_dir}", "limit=2", "sampling.max_tokens=3", f"hydra.sweep.dir={sweep}", timeout=600,
    )
    assert run.returncode == 0, run.stderr
    folders = sorted(p.parent.relative_to(sweep).as_posix() for p in sweep.rglob("records.jsonl"))
    assert folders == ["local/advbench/decoding/none", "local/advbench/prefill/none"]  # named by the card: local
    decoding = sweep / "local/advbench/decoding/none"
    assert len((decoding / "records.jsonl").read_text().splitlines()) == 2 * 100
    assert (decoding / "asr_worst_case.csv").exists() and (decoding / ".hydra" / "config.yaml").exists()

    merged = tmp_path / "merged"
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = subprocess.run([sys.executable, "-m", "harness", "report", str(sweep), "--out", str(merged)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "2 run folders merged" in out.stdout
    summary = pd.read_csv(merged / "asr_summary.csv")
    assert sorted(summary["attack"]) == ["decoding", "prefill"]
    assert summary.set_index("attack")["configs"].to_dict() == {"decoding": 100, "prefill": 4}
    assert (summary["behaviors"] == 2).all()
    assert (summary["worst_case_asr"] >= summary["best_config_asr"]).all()
    table = pd.read_csv(merged / "asr.csv")
    assert set(table["attack"]) == {"prefill", "decoding"}
    assert (table["strategy"] == "worst case").sum() == 3  # with, without, any
    for png in ("asr_summary.png", "asr_vs_k.png", "asr_vs_decoding.png"):
        assert (merged / png).stat().st_size > 1000, png
    assert (merged / "asr_summary.md").read_text() in out.stdout


def test_report_on_a_folder_without_records_says_so(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness", "report", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0 and "no records.jsonl under" in out.stderr


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                    reason="hydra-submitit-launcher not installed (pip install -e '.[slurm]')")
def test_slurm_launcher_config_composes():
    out = harness_main("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30",
                       "model=tiny", "--cfg", "hydra")
    assert out.returncode == 0, out.stderr
    launcher = out.stdout.split("  launcher:\n", 1)[1].split("\n  sweeper:", 1)[0]
    assert "hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in launcher
    for line in ("partition: gpu", "timeout_min: 30", "gpus_per_node: 1", "max_num_timeout: 2"):
        assert line in launcher
