"""Shared CLI plumbing: build plugins from a Hydra config, turn user errors into one clear line."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from harness import secrets
from harness.errors import ExitCode, HarnessError

log = logging.getLogger("harness")
F = TypeVar("F", bound=Callable[..., Any])


def user_error(exc: BaseException) -> HarnessError | None:
    """The HarnessError behind an exception (Hydra wraps errors raised in constructors)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, HarnessError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def exits_cleanly(fn: F) -> F:
    """Print user errors (bad values, missing data or weights) as one message and exit with the error's
    code (2; 4 for failed requests, 5 for a busy run folder; see `ExitCode`)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hydra.errors import InstantiationException

        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            log.error("interrupted; everything generated so far is in records.jsonl and a re-run resumes")
            sys.exit(ExitCode.INTERRUPTED)
        except (HarnessError, InstantiationException) as exc:
            cause = user_error(exc)
            message = secrets.scrub(str(cause) if cause is not None else str(exc))
            log.error("%s", message)
            print(f"error: {message}", file=sys.stderr)
            sys.exit(cause.exit_code if cause is not None else ExitCode.USER_ERROR)

    return wrapper  # type: ignore[return-value]


def instantiate(node: DictConfig, **kwargs: Any) -> Any:
    from hydra.utils import instantiate as hydra_instantiate

    return hydra_instantiate(node, _convert_="all", **kwargs)


def build_experiment(cfg: DictConfig):

    from harness.run import Experiment
    from harness.settings import parse
    from harness.types import Sampling

    check_finite(OmegaConf.to_container(cfg, resolve=False))
    sampling = parse(Sampling, "sampling", cfg.sampling)
    return Experiment(
        model=instantiate(cfg.model),
        benchmark=instantiate(cfg.benchmark),
        attack=instantiate(cfg.attack),
        defense=instantiate(cfg.defense),
        judge=instantiate(cfg.judge),
        engine=instantiate(cfg.engine),
        sampling=sampling,
        out_dir=run_folder(cfg),
        config=OmegaConf.to_container(cfg, resolve=True),
    )


def check_finite(node: Any, where: str = "") -> None:
    """Every number in a configuration must be finite: inf and nan cannot be stored, compared or read back."""
    if isinstance(node, dict):
        for key, value in node.items():
            check_finite(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_finite(value, f"{where}[{i}]")
    elif isinstance(node, float) and not math.isfinite(node):
        raise HarnessError(f"{where}={node}: not a finite number; give a finite value")


def run_folder(cfg: DictConfig) -> Path:
    """`out_dir`; in a --multirun sweep each job's own folder (hydra.sweep.dir/subdir), so
    `python -m harness.report <sweep dir>` finds every job's records there."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.out_dir)
