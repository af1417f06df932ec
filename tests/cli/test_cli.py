"""The CLI end to end, as a user runs it, on the tiny model: in-process (`harness_main`, the same entry and exit
handling) where the command's behaviour is the point; a real process (`harness_cli`) for the run that writes and
resumes and for one user error's exit status."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from conftest import harness_cli, harness_main


@pytest.fixture()
def base_args(data_dir, tiny, tmp_path):
    # The session's tiny model, reached through the `local` card, so no subprocess rebuilds it.
    return [f"data_dir={data_dir}", "model=local", f"model.path={tiny.folder}", "model.name=tiny",
            "limit=3", "sampling.max_tokens=8", f"out_dir={tmp_path / 'run'}"]


@pytest.mark.slow
def test_run_writes_tables_and_resumes(base_args, tmp_path):
    first = harness_cli(*base_args, "attack.lengths=[0,5,10]")
    assert first.returncode == 0, first.stderr
    run = tmp_path / "run"
    table = pd.read_csv(run / "asr.csv")
    assert list(table["k"]) == [0, 5, 10] and list(table["n"]) == [3, 3, 3]
    assert (run / "asr.md").read_text() in first.stdout
    assert (run / "asr_vs_k.png").exists()
    lines = (run / "records.jsonl").read_text().splitlines()
    assert len(lines) == 9 and all(json.loads(line)["verdict"]["judge"].startswith("keyword") for line in lines)
    assert "9 generated, 0 reused" in first.stdout

    again = harness_cli(*base_args, "attack.lengths=[0,5,10,20]")
    assert again.returncode == 0, again.stderr
    assert "3 generated, 9 reused" in again.stdout  # only k=20 is new
    assert len((run / "records.jsonl").read_text().splitlines()) == 12

    rejudge = harness_cli(*base_args, "attack.lengths=[0,5,10,20]", "judge=keyword_gcg")
    assert rejudge.returncode == 0, rejudge.stderr
    assert "0 generated, 12 reused, 12 re-judged" in rejudge.stdout


def test_unknown_option_lists_choices(base_args):
    out = harness_main(*base_args, "attack=nope")
    assert out.returncode != 0
    assert "attack/nope" in out.stderr and "direct" in out.stderr and "prefill" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "override, message",
    [
        ("attack.lengths=[0,-3]", "attack.lengths=[0, -3]: prefill lengths are token counts"),
        ("benchmark.path=/nonexistent/advbench.csv", "benchmark.path='/nonexistent/advbench.csv' does not exist"),
        ("benchmark.categories=[cyber]", "unknown categories 'cyber'"),
        ("sampling.temperature=-1", "temperature"),
    ],
)
def test_bad_values_give_one_clear_message(base_args, override, message, tmp_path):
    out = harness_main(*base_args, override)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_columns_in_data_file(base_args, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("question,answer\nx,y\n")
    out = harness_main(*base_args, f"benchmark.path={bad}")
    assert out.returncode == 2
    assert "no column for 'prompt'" in out.stderr and "'question', 'answer'" in out.stderr


def test_model_without_chat_template(base_args, tiny, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(tiny.folder, bare)
    (bare / "chat_template.jinja").unlink()
    cfg = json.loads((bare / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(cfg))
    out = harness_main(*base_args, f"model.path={bare}")
    assert out.returncode == 2
    assert "has no chat template" in out.stderr and "model.chat_template" in out.stderr


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_llama2_card_stops_at_once_without_weights(data_dir, tmp_path):
    args = ("attack=prefill", "model=llama2", f"data_dir={data_dir}", f"out_dir={tmp_path / 'x'}", "limit=2")
    out = harness_cli(*args, timeout=120)  # a real process: a run's user error is its exit status
    assert out.returncode == 2
    assert "meta-llama/Llama-2-7b-chat-hf" in out.stderr and "model.path=" in out.stderr
    assert "Traceback" not in out.stderr
    # in-process (harness_main, what most CLI tests use) the same command ends the same way
    inside = harness_main(*args)
    assert inside.returncode == out.returncode and error_lines(inside.stderr) == error_lines(out.stderr) != []


def test_in_process_runs_leave_the_process_as_they_found_it(base_args, tmp_path):
    import logging
    import os
    import sys

    from hydra.core.global_hydra import GlobalHydra

    def state():
        root = logging.getLogger()
        return sys.argv[:], os.getcwd(), root.handlers[:], root.level, dict(os.environ)

    before = state()
    out = harness_main(*base_args, "attack.lengths=[0,-3]", cwd=tmp_path)  # fails inside the job, after Hydra's logging
    assert out.returncode == 2 and error_lines(out.stderr)
    assert state() == before and not GlobalHydra.instance().is_initialized()


def test_llama2_config_resolves(tmp_path):
    out = harness_main("model=llama2-augmented", "defense=system_prompt", "--cfg", "job", "--resolve")
    assert out.returncode == 0, out.stderr
    assert "Unispac/Llama2-7B-Chat-Augmented" in out.stdout and "[INST]" in out.stdout
    assert "safety_system_prompt: 'You are a helpful, respectful and honest" in out.stdout
    assert "trust_remote_code" not in out.stdout or "trust_remote_code: false" in out.stdout
