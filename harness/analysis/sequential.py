"""The gate's sequential design: stop sampling behaviors as soon as every row's decision is clear.

Per behavior the run and the baseline give D = +1 (the event moved the bad way: not broken -> broken,
answered -> refused, correct -> wrong), -1 (the good way) or 0 (no change); the mean of D is the worsening.
Behaviors are taken in the baseline's order, `look` at a time. Two test martingales run on the D's
(sequential probability ratio tests in betting form, Wald's SPRT generalised to the paired design):

- FAIL, a worsening beyond the tolerance t: M = mean over a grid of bets l of prod (1 + l (D - t)).
  Under H0 (mean D <= t) M is a non-negative supermartingale, so by Ville's inequality it ever reaches
  1/a with probability <= a, however the looks fall and whatever share of behaviors is discordant.
  With t = 0 every concordant pair has D = 0 and leaves M unchanged: the test runs on the discordant
  pairs alone, each bet on (for a one-point bet l) the probability (1 + l) / 2 that a discordant pair
  goes the bad way, as Wald's SPRT on the discordant pairs does.
- PASS, no worsening as large as t + `detect`: N = mean over l of prod (1 - l (D - t - detect)), a
  supermartingale when the mean of D is >= t + detect, so it reaches 1/`miss` with probability <= `miss`.

A row is decided at the first look where M >= rows / alpha (FAIL: alpha split evenly over the rows, as
Holm's first step) or N >= 1 / miss (ok). Error rates, for behaviors in random order (exchangeable):
at most `alpha` chance that any row fails when none is worse than its tolerance (family-wise, any
stopping); at most `miss` chance that a row whose worsening is >= tolerance + detect passes, *if* the
design decides before the behaviors run out. A row still undecided when they run out has shown no
regression and passes (as the fixed-size gate would rarely fail it); the report says so. Checked by a
numpy simulation (tests/analysis/test_gate_statistics.py); measured numbers are in docs/performance.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BETS = np.array([0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9])  # fractions of the largest bet that keeps every factor > 0


@dataclass(frozen=True)
class Design:
    look: int = 10  # behaviors per look
    detect: float = 0.2  # the smallest worsening beyond the tolerance the design must catch (absolute, 0..1)
    miss: float = 0.1  # at most this chance to pass a row that is worse by tolerance + detect


@dataclass(frozen=True)
class Decision:
    decision: np.ndarray  # +1 FAIL, -1 ok (no worsening as large as tolerance + detect), 0 undecided
    used: np.ndarray  # behaviors used when decided (all of them when undecided)
    p: np.ndarray  # anytime-valid one-sided p-value for a worsening beyond the tolerance, at that look


def log_mean_exp(x: np.ndarray) -> np.ndarray:
    top = np.max(x, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return (top + np.log(np.mean(np.exp(x - top), axis=-1, keepdims=True)))[..., 0]


def paths(d: np.ndarray, tolerance: float, detect: float) -> tuple[np.ndarray, np.ndarray]:
    """log M and log N after each behavior; d has shape (..., behaviors) with values in {-1, 0, 1}."""
    d = np.asarray(d, dtype=float)[..., None]
    fail = np.log1p(BETS / (1 + tolerance) * (d - tolerance))
    log_m = log_mean_exp(np.cumsum(fail, axis=-2))
    top = tolerance + detect
    if top >= 1:  # no worsening can reach it: nothing to rule out
        return log_m, np.full(log_m.shape, math.inf)
    ok = np.log1p(-BETS / (1 - top) * (d - top))
    return log_m, log_mean_exp(np.cumsum(ok, axis=-2))


def looks(n: int, look: int) -> np.ndarray:
    """The behavior counts at which the design looks: every `look`, and the last behavior."""
    return np.array(sorted({*range(look, n, look), n}))


def decide(d: np.ndarray, tolerance: float, design: Design, alpha: float) -> Decision:
    """Run the design on d (shape (..., behaviors), the behaviors in order); `alpha` is this row's share."""
    d = np.asarray(d)
    at = looks(d.shape[-1], design.look)
    log_m, log_n = paths(d, tolerance, design.detect)
    log_m, log_n = log_m[..., at - 1], log_n[..., at - 1]
    fail = log_m >= math.log(1 / alpha)
    ok = log_n >= math.log(1 / design.miss)
    crossed = fail | ok
    decided = crossed.any(axis=-1)
    index = np.where(decided, np.argmax(crossed, axis=-1), len(at) - 1)
    took = np.take_along_axis
    decision = np.where(decided, np.where(took(fail, index[..., None], -1)[..., 0], 1, -1), 0)
    best = took(np.maximum.accumulate(log_m, axis=-1), index[..., None], -1)[..., 0]
    return Decision(decision=decision, used=at[index], p=np.minimum(1.0, np.exp(-best)))
