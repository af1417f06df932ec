"""bench/gpu_smoke.py on a machine without a CUDA GPU stops at once with one clear message and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def test_without_a_gpu_it_says_so_and_exits(tmp_path):
    result = ROOT / "results" / "bench" / "gpu_smoke.json"
    before = result.stat().st_mtime_ns if result.exists() else None
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_smoke.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 2
    assert out.stderr.startswith("gpu_smoke: no CUDA GPU visible") and "Traceback" not in out.stderr
    assert (result.stat().st_mtime_ns if result.exists() else None) == before
