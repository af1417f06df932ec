"""engine=auto (the default) picks vLLM only with a CUDA GPU and vllm installed, logs why, and every
record names the engine that produced it."""

from __future__ import annotations

import importlib.util
import json
import logging

import pytest
import torch
from conftest import harness_main

from harness.engine import auto
from harness.engine.hf import HFEngine


@pytest.fixture
def gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake H100")


def vllm_installed(monkeypatch, present: bool) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (object() if present else None) if name == "vllm" else real(name, *a))


def test_gpu_with_vllm_chooses_vllm(tiny, gpu, monkeypatch):
    vllm_installed(monkeypatch, True)
    assert auto.choose(tiny) == ("vllm", "CUDA GPU Fake H100 and vllm installed")


def test_gpu_without_vllm_chooses_hf_and_says_how_to_get_vllm(tiny, gpu, monkeypatch):
    vllm_installed(monkeypatch, False)
    name, why = auto.choose(tiny)
    assert name == "hf" and "pip install vllm" in why


def test_an_explicit_cpu_device_keeps_hf(tiny, gpu, monkeypatch):
    vllm_installed(monkeypatch, True)
    monkeypatch.setattr(tiny, "device", "cpu")
    assert auto.choose(tiny) == ("hf", "model.device=cpu")


def test_cpu_builds_the_hf_engine_and_logs_the_choice(tiny, monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="harness"):
        engine = auto.auto_engine(tiny, batch_size=7, progress=False)
    assert isinstance(engine, HFEngine) and engine.batch_size == 7
    assert "engine=auto: hf (no CUDA GPU)" in caplog.text


def test_default_run_uses_auto_and_records_the_engine(tiny, data_dir, tmp_path):
    out = tmp_path / "run"
    run = harness_main("model=local", f"model.path={tiny.folder}", "model.name=tiny", f"data_dir={data_dir}", "limit=1",
                      "attack=direct", "sampling.max_tokens=2", f"out_dir={out}")
    assert run.returncode == 0, run.stderr
    expected, _ = auto.choose(tiny)  # hf on a CPU machine
    assert f"engine=auto: {expected}" in (out / "harness.log").read_text()
    (record,) = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert record["completion"]["engine"] == expected
