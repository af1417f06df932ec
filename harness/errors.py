"""User-facing failures.

A `HarnessError` is a failure the user caused and can fix (a bad option value, a missing
data file, weights that are not available). Its message names the bad value and what to
do instead; the CLI prints it without a traceback and exits non-zero.
"""

from __future__ import annotations

from collections.abc import Iterable


class HarnessError(Exception):
    """A failure with a message meant for the user; no traceback is shown."""


def choices(values: Iterable[object]) -> str:
    return ", ".join(repr(v) for v in values)


class DataError(HarnessError):
    """Benchmark data missing, unreadable or malformed."""


class ModelUnavailable(HarnessError):
    """Model weights or tokenizer cannot be found or loaded."""
