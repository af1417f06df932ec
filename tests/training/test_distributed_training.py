"""The training loop on 2 processes (accelerate launch, DDP over gloo on CPU) trains the same
model as on 1 process with the same batch, under the same cache key; only the main process writes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from safetensors.torch import load_file

WORKER = ROOT / "tests" / "support" / "distributed_worker.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trained(cmd: list[str], cache: Path) -> Path:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd + [str(cache)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert out.returncode == 0, out.stderr[-4000:]
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("TRAINED ")]  # printed by the main process only
    return Path(line.removeprefix("TRAINED "))


@pytest.mark.slow
def test_two_processes_train_the_one_process_model(tiny, tmp_path):
    one = trained([sys.executable, str(WORKER), str(tiny.folder)], tmp_path / "one")
    two = trained([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "conf/accelerate/ddp.yaml"),
                   "--num_processes", "2", "--main_process_port", str(free_port()), str(WORKER), str(tiny.folder)],
                  tmp_path / "two")
    assert one.name == two.name  # the cache key is the recipe's, not the world size's
    assert '"processes": 2' in (two / "train_log.json").read_text() and '"processes": 1' in (one / "train_log.json").read_text()
    assert sorted(p.name for p in two.parent.iterdir() if not p.name.startswith(".tiny-dist")) == [two.name]  # no leftovers
    assert not [p for p in two.parent.iterdir() if p.is_dir() and p.name.startswith(".")]  # no half-built folder

    base, a, b = (load_file(str(folder / "model.safetensors")) for folder in (tiny.folder, one, two))
    assert a.keys() == b.keys()
    moved = max(float((a[k] - base[k]).abs().max()) for k in a)
    assert moved > 1e-3  # training changed the weights
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=f"{k} differs between 1 and 2 processes")
