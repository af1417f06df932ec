"""Content-addressed folders: build once, reuse, never leave a half-written one behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import filelock


def cached_folder(root: Path, key: str, build: Callable[[Path], None], marker: str = "config.json") -> Path:
    """Return `root/key`, calling `build(tmp_folder)` first if it does not exist yet.

    The folder is built under a temporary name and renamed into place, under a file lock,
    so concurrent runs (a Hydra multirun) build it once and a crash leaves nothing usable-looking.
    """
    final = root / key
    if (final / marker).exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(root / f".{key}.lock")):
        if (final / marker).exists():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            build(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
