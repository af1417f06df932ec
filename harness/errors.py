"""User-facing failures.

A `HarnessError` is a failure the user caused and can fix (a bad option value, a missing
data file, weights that are not available). Its message names the bad value and what to
do instead; the CLI prints it without a traceback and exits non-zero.
"""

from __future__ import annotations

from collections.abc import Iterable


class ExitCode:
    """What `python -m harness` (and the other entry points) exit with. README: "Failure behaviour"."""

    OK = 0
    CRASH = 1  # an unexpected exception (a bug): Python's traceback
    USER_ERROR = 2  # a HarnessError: a bad value, missing data or weights; nothing was judged
    JUDGE_ERRORS = 3  # the run finished, but some verdicts are judge errors (counted apart; a re-run re-judges them)
    FAILED_REQUESTS = 4  # some requests failed after retries: completions missing (a re-run generates them)
    FOLDER_BUSY = 5  # another run holds the run folder's lock
    INTERRUPTED = 130  # Ctrl-C: what finished is saved, a re-run resumes


class HarnessError(Exception):
    """A failure with a message meant for the user; no traceback is shown."""

    exit_code = ExitCode.USER_ERROR


class RequestsFailed(HarnessError):
    """Requests that still failed after the client's retries; the completions that succeeded are saved."""

    exit_code = ExitCode.FAILED_REQUESTS


def choices(values: Iterable[object]) -> str:
    return ", ".join(repr(v) for v in values)


class DataError(HarnessError):
    """Benchmark data missing, unreadable or malformed."""


class ModelUnavailable(HarnessError):
    """Model weights or tokenizer cannot be found or loaded."""
