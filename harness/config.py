"""Where the Hydra config lives, and one way for the sub-tools to compose it.

The config groups sit in `conf/` at the top of the checkout. An installed wheel ships the same
files as package data in `harness/conf/` (pyproject maps `conf/` there), so `CONF` is the
packaged copy when it exists and the checkout's otherwise (a source tree, an editable install).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from harness.errors import HarnessError, choices

PACKAGED = Path(__file__).resolve().parent / "conf"
CHECKOUT = Path(__file__).resolve().parents[1] / "conf"
CONF = PACKAGED if (PACKAGED / "config.yaml").is_file() else CHECKOUT


def options(group: str) -> list[str]:
    """The options of a config group (conf/<group>/*.yaml)."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The harness config under Hydra overrides (group=option, key=value), without running anything."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise HarnessError(f"{choices(bad)}: give Hydra overrides key=value, e.g. judge=keyword_gcg")
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))
    except HydraException as exc:
        raise HarnessError(f"{' '.join(overrides)}: {str(exc).splitlines()[0]}") from None
