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


CONSOLES = ("<stdout>", "<stderr>")


def console(handler: logging.Handler) -> bool:
    """A handler that writes to the terminal (stdout or stderr, as Hydra's console and basicConfig do)."""
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = handler.stream
    if stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) or getattr(stream, "name", "") in CONSOLES:
        return True
    try:
        return bool(stream.isatty())
    except (ValueError, OSError, AttributeError):  # closed (a console of an earlier caller): nothing to write to
        return True


def log_elsewhere(message: str) -> None:
    """The user error, also in each log that is not the terminal (a run's harness.log): the terminal gets it once,
    from the `error: ...` line (a console handler too would print it twice)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (message,), None)
    for handler in logging.getLogger().handlers:
        if not console(handler) and record.levelno >= handler.level:
            handler.handle(record)


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
            log_elsewhere(message)  # the run's log file keeps it too
            print(f"error: {message}", file=sys.stderr)
            sys.exit(cause.exit_code if cause is not None else ExitCode.USER_ERROR)

    return wrapper  # type: ignore[return-value]
