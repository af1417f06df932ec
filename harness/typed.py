"""Typed plugin settings from config values: a pydantic model, or one clear line naming the bad value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from harness.errors import HarnessError

S = TypeVar("S", bound=BaseModel)


def settings_of(kind: type[S], values: Mapping[str, Any], prefix: str) -> S:
    """`kind(**values)`; a bad or unknown value raises HarnessError('<prefix>.<field>=<value>: <why>')."""
    try:
        return kind(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise HarnessError(f"{prefix}.{field}={err.get('input')!r}: {err['msg']}") from None
