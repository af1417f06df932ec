"""Where the Hydra config lives, and one way to compose it: the sub-tools (kl, rejudge, judge_eval),
the benchmarks in bench/ and experiment drivers building a default plugin all go through `compose`.

The config groups sit in `conf/` at the top of the checkout. An installed wheel ships the same
files as package data in `harness/conf/` (pyproject maps `conf/` there), so `CONF` is the
packaged copy when it exists and the checkout's otherwise (a source tree, an editable install).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from harness.errors import HarnessError, choices

HARNESS = Path(__file__).resolve().parent  # the harness package folder
PACKAGED = HARNESS / "conf"
CHECKOUT = HARNESS.parent / "conf"
CONF = PACKAGED if (PACKAGED / "config.yaml").is_file() else CHECKOUT


def options(group: str) -> list[str]:
    """The options of a config group (conf/<group>/*.yaml)."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The harness config under Hydra overrides (group=option, key=value), without running anything.

    Inside a running Hydra app (`python -m harness`, whose config is this one) it composes through the app's
    Hydra instead of starting a second one."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    bad = [o for o in overrides if "=" not in o and not o.startswith("~")]  # ~key deletes a key
    if bad:
        raise HarnessError(f"{choices(bad)}: give Hydra overrides key=value, e.g. judge=keyword_gcg")
    try:
        if GlobalHydra.instance().is_initialized():
            return hydra_compose(config_name="config", overrides=list(overrides))
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))
    except HydraException as exc:
        raise HarnessError(f"{' '.join(overrides)}: {str(exc).splitlines()[0]}") from None


def option(group: str, name: str, **values: Any) -> Any:
    """The plugin the option `conf/<group>/<name>.yaml` builds, with `values` overriding its settings
    (`_partial_=True`: a factory taking further settings). An experiment driver's default for a plugin
    its config does not name, e.g. `option("attack", "direct")`."""
    if name not in options(group):
        raise HarnessError(f"{group}={name}: no such option; choose one of {choices(options(group))}")
    return instantiate(compose([f"{group}={name}"])[group], **values)


def instantiate(node: DictConfig, **kwargs: Any) -> Any:
    from hydra.utils import instantiate as hydra_instantiate

    return hydra_instantiate(node, _convert_="all", **kwargs)


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
