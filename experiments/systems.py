"""An experiment's systems: each a model card and an optional defense (the driver's default when it names none)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.defense import Defense
from harness.errors import HarnessError
from harness.model.base import Model


def systems(configured: Mapping[str, Mapping[str, Any]], default: Defense) -> dict[str, tuple[Model, Defense]]:
    """label -> (model, defense) from `driver.systems`; a system without a model is a one-line error."""
    out: dict[str, tuple[Model, Defense]] = {}
    for label, system in configured.items():
        if not isinstance(system, Mapping) or "model" not in system:
            raise HarnessError(f"experiment: driver.systems.{label} needs a model (and optionally a defense)")
        out[label] = (system["model"], system.get("defense") or default)
    return out
