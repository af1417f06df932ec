"""Exit handling every command shares: a user error is one line, `error: ...`, and an exit code
(`harness.errors.ExitCode`); Ctrl-C says what is kept."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from harness.errors import ExitCode, HarnessError
from harness.util import secrets
from harness.util.calls import ctrl_c_stops

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


def logged_elsewhere() -> bool:
    """Whether a log handler writes somewhere other than stderr (a run's harness.log, Hydra's console on stdout):
    then a user error is logged there too; otherwise it is printed once, as `error: ...` on stderr."""
    return any(not (isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stderr)
               for h in logging.getLogger().handlers)


def exits_cleanly(fn: F) -> F:
    """Print user errors (bad values, missing data or weights) as one message and exit with the error's
    code (2; 4 for failed requests, 5 for a busy run folder; see `ExitCode`)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hydra.errors import InstantiationException

        try:
            with ctrl_c_stops():
                return fn(*args, **kwargs)
        except KeyboardInterrupt:
            log.error("interrupted; everything generated so far is in records.jsonl and a re-run resumes")
            sys.exit(ExitCode.INTERRUPTED)
        except (HarnessError, InstantiationException) as exc:
            cause = user_error(exc)
            message = secrets.scrub(str(cause) if cause is not None else str(exc))
            if logged_elsewhere():  # the run's log file keeps it too
                log.error("%s", message)
            print(f"error: {message}", file=sys.stderr)
            sys.exit(cause.exit_code if cause is not None else ExitCode.USER_ERROR)

    return wrapper  # type: ignore[return-value]
