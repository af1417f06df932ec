"""Candidate batches: position groups, cut to a batch size that halves on out-of-memory.

Candidates arrive sorted by the position they change. A batch starts at the first position
it changes (its rows share the keys/values of everything before it), so the candidates are
first grouped by position and each group is cut into batches of at most `size` rows.

More groups recompute fewer suffix tokens but make smaller forward passes, which run far
below peak speed (on 2 CPU cores a 576-wide matmul over 90 rows ran at ~45% of its speed
over 2,880 rows). By default (`groups=None`) the number of groups is chosen so that each
forward pass has at least `min_tokens` token positions: one group per suffix position at
the reference width (512), a couple of groups at the CPU bench's width (64).
"""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import Callable
from itertools import pairwise
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
T = TypeVar("T")
# token positions per forward pass below which extra position groups cost more than they save; 2048 with the bf16
# copy (bench/gcg_precision.py's held-out behaviors 97 and 142, 4 steps each: 9 % less scoring time than 1024)
MIN_TOKENS_CPU = 2048
MIN_TOKENS_GPU = 4096


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class AutoBatch:
    """The number of candidate rows per forward pass: starts at `size` (None: all), halves on OOM and remembers."""

    def __init__(self, size: int | None = None, groups: int | None = None, min_tokens: int | None = None) -> None:
        self.size = size
        self.groups = groups
        self.min_tokens = min_tokens

    def group_count(self, rows: int, length: int, tail: int, device: torch.device | str = "cpu") -> int:
        if self.groups:
            return min(self.groups, length)
        min_tokens = self.min_tokens or (MIN_TOKENS_GPU if str(device).startswith("cuda") else MIN_TOKENS_CPU)
        tokens = rows * (length / 2 + tail)  # a candidate runs from its position to the end of the tail
        return max(1, min(length, int(tokens // min_tokens)))

    def plan(self, positions: torch.Tensor, length: int, tail: int = 0, device: torch.device | str = "cpu") -> list[tuple[int, int]]:
        """(start, end) row ranges over position-sorted candidates, each within one position group."""
        n = len(positions)
        groups = self.group_count(n, length, tail, device)
        group_of = (positions * groups) // length
        ranges, start = [], 0
        for end in range(1, n + 1):
            if end == n or group_of[end] != group_of[start]:
                step = self.size or (end - start)
                pieces = math.ceil((end - start) / step)
                cuts = [start + round(i * (end - start) / pieces) for i in range(pieces + 1)]
                ranges.extend(pairwise(cuts))
                start = end
        return ranges

    def run(self, fn: Callable[[], T], rows: int) -> T:
        """Call `fn` (which plans with `self`), halving the batch size while it runs out of memory."""
        while True:
            try:
                return fn()
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                current = self.size or rows
                if current <= 1:
                    raise
                self.size = max(1, current // 2)
                log.warning("gcg: out of memory with %d candidates per batch; retrying with %d", current, self.size)
                gc.collect()
                _empty_device_cache()


def _empty_device_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
