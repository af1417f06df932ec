"""The run folder: checked before anything is computed, and locked while a run writes into it.

Two runs of one configuration on one `out_dir` would both generate everything and append
duplicate lines. A run therefore holds an exclusive `flock` on `<out_dir>/.harness.lock`
for its whole life (the kernel drops it when the process dies, kill -9 included, so a stale
lock never blocks). The file names the holder (pid, host, start time, command): a second
run says who holds the folder and stops with exit code 5, or waits for it with `--wait`
(`wait=true`).
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.errors import ExitCode, HarnessError
from harness.util import secrets

LOCK = ".harness.lock"


class FolderBusy(HarnessError):
    """Another run holds the run folder's lock."""

    exit_code = ExitCode.FOLDER_BUSY


def check_folder(path: Path, what: str = "out_dir") -> Path:
    """`path` is (or can become) a writable folder; a HarnessError naming it otherwise."""
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "" if probe == path else f" ({probe} on its path is a file)"
        raise HarnessError(f"{what}={str(path)!r} is not a folder{where}; choose another {what}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise HarnessError(f"{what}={str(path)!r}: {probe} is not writable by this user; choose another {what}")
    return path


def holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "another run"
    except OSError:
        return "another run"


@contextmanager
def locked(folder: Path, wait: bool = False) -> Iterator[None]:
    """Hold the run folder's lock while the block runs (see the module docstring)."""
    folder = check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise FolderBusy(
                    f"run folder {folder} is in use by {holder(path)}; wait for that run to finish, re-run with "
                    f"--wait to queue behind it, or choose another out_dir"
                ) from None
            print(f"waiting for run folder {folder}, in use by {holder(path)}", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        command = secrets.scrub(" ".join(sys.argv))[:300]
        since = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since} ({command})\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # nobody holds it now
    finally:
        os.close(fd)  # releases the lock


def run_folders(paths: Sequence[Path]) -> list[Path]:
    """Every folder holding a records.jsonl at or below the paths (a run, a sweep, a results tree),
    symlinks resolved, each once (two paths to one run, or a run inside a tree also given)."""
    folders: set[Path] = set()
    for path in paths:
        if path.is_file() and path.name == "records.jsonl":
            folders.add(path.parent.resolve())
        elif path.is_dir():
            folders.update(p.parent.resolve() for p in path.rglob("records.jsonl") if p.is_file())
        else:
            raise HarnessError(f"{path}: no such run folder (give a run folder, a sweep folder or a results/ tree)")
    if not folders:
        raise HarnessError(f"no runs in {', '.join(map(str, paths))}: no records.jsonl in or under it "
                           "(give folders written by `python -m harness`)")
    return sorted(folders)
