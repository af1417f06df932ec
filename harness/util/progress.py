"""Progress for every stage (sampling answers, training, generating, judging): a tqdm bar on a
terminal; in a log (output redirected, SLURM job logs, CI) plain lines through `logging` instead,
one when the stage starts, then at most one every `HARNESS_PROGRESS_INTERVAL` seconds (default 30)
and one when it ends, each with the count, rate and ETA, and no carriage returns or escape codes.
TQDM_DISABLE=1 silences both.

    with progress(total=n, desc="generating [smollm2-aligned]", unit="seq") as bar: ... bar.update(k)
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from typing import Any

from tqdm.auto import tqdm

log = logging.getLogger("harness.util.progress")
LINE = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%) [{elapsed} elapsed, ETA {remaining}, {rate_fmt}]{postfix}"


class LogLines(tqdm):
    """tqdm's counting, rate and ETA, printed as log lines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.interval = float(os.environ.get("HARNESS_PROGRESS_INTERVAL", "30"))
        self.logged_at: float | None = None
        self.closing = False
        kwargs.update(file=io.StringIO(), bar_format=LINE, dynamic_ncols=False, ascii=True)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm clearing a bar (leave=False): nothing to take back in a log
            return True
        now = time.monotonic()
        if self.logged_at is not None and not self.closing and now - self.logged_at < self.interval:
            return True
        self.logged_at = now
        log.info("%s", msg if msg is not None else self.format_meter(**self.format_dict))
        return True

    def close(self) -> None:
        self.closing = True  # the stage's last line, whenever the previous one was
        super().close()


def interactive() -> bool:
    return sys.stderr.isatty()


def progress(iterable: Any = None, **kwargs: Any) -> tqdm:
    """A tqdm bar on a terminal, `LogLines` otherwise (same arguments as tqdm)."""
    if os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes"):
        kwargs["disable"] = True
    return (tqdm if interactive() else LogLines)(iterable, **kwargs)


def quiet_library_bars() -> None:
    """In a log, transformers' and the hub's own bars (loading weights, writing shards) are carriage-return junk: off."""
    if interactive():
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
