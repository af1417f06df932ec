"""Statistics every table shares: intervals on proportions, paired tests, multiple testing, power.

- `count_interval(k, n)` and `proportion_interval(successes, trials)`: the one interval policy (Wilson
  with one sample per behavior, the behavior-clustered bootstrap with several); `wilson(k, n)` is its formula.
- `cluster_bootstrap(successes, trials)`: a percentile bootstrap that resamples *behaviors*
  (clusters), for ASRs pooled over several samples or configurations of each behavior.
- `mcnemar(b, c)`: the exact (binomial) McNemar test on the discordant pairs of a paired design;
  `exact_paired_difference(a, b, c, d)`: a paired-difference interval that agrees with it;
  `paired_difference(a, b, c, d)`: Newcombe's hybrid-score interval for a paired difference;
  `unpaired_difference` the same for two independent proportions (counts only).
- `kappa_interval(truth, predicted)`: a percentile bootstrap over rows for Cohen's kappa (judge agreement).
- `holm(p_values)`: Holm's step-down adjustment across the rows of a grid.
- `behaviors_needed(p_a, p_b)`: how many behaviors a paired comparison needs for a given power.

Rates are fractions in [0, 1] here; the tables multiply by 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # fixed: a table is reproducible byte for byte


def wilson(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n; (nan, nan) when n is 0."""
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= k <= n:
        raise ValueError(f"wilson: k={k} is not between 0 and n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends: no rounding residue at 0 and n
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def count_interval(k: float, n: float) -> tuple[float, float]:
    """The interval policy for k of n behaviors, one vote each (counts only): the 95 % Wilson interval.
    Every table, experiment, bench and the browser's tables take their intervals from here or from
    `proportion_interval` (several samples per behavior); nothing else calls `wilson` directly."""
    return wilson(k, n)


def cluster_bootstrap(successes: Sequence, trials: Sequence, resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95 % percentile interval of sum(successes)/sum(trials), resampling clusters (behaviors) with replacement.

    One row per behavior: its harmful count and its judged-sample count. Two-dimensional input
    (behaviors x configurations) gives the interval of the *best* configuration's rate, the
    maximum over columns recomputed in every resample (so the selection is inside the interval).
    When the rate is 0 or 1 the bootstrap collapses to a point; then the Wilson interval on the
    behaviors (one vote each) is returned, which is what the clustered design can claim."""
    k, m = np.asarray(successes, dtype=float), np.asarray(trials, dtype=float)
    if k.ndim == 1:
        k, m = k[:, None], m[:, None]
    keep = m.sum(axis=1) > 0
    k, m = k[keep], m[keep]
    if not len(m):
        return (math.nan, math.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.nanmax(k.sum(axis=0) / np.where(m.sum(axis=0) > 0, m.sum(axis=0), np.nan))
    if total in (0.0, 1.0):
        return wilson(total * len(m), len(m))
    draws = np.random.default_rng(seed).integers(0, len(m), size=(resamples, len(m)))
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.nanmax(k[draws].sum(axis=1) / m[draws].sum(axis=1), axis=1)
    lo, hi = np.quantile(rates, [0.025, 0.975])
    return (float(lo), float(hi))


def proportion_interval(successes: Sequence[float], trials: Sequence[float]) -> tuple[float, float]:
    """Wilson when each behavior has one sample, else the behavior-clustered bootstrap."""
    m = np.asarray(trials, dtype=float)
    m = m[m > 0]
    if not len(m):
        return (math.nan, math.nan)
    if (m == 1).all():
        return wilson(float(np.sum(successes)), float(len(m)))
    return cluster_bootstrap(successes, trials)


def cohen_kappa(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Cohen's kappa of two 0/1 label vectors; nan when it is undefined (no rows, or chance agreement 1)."""
    n = len(truth)
    if not n:
        return math.nan
    observed = float(np.mean(truth == predicted))
    p_t, p_p = float(np.mean(truth)), float(np.mean(predicted))
    chance = p_t * p_p + (1 - p_t) * (1 - p_p)
    return (observed - chance) / (1 - chance) if chance < 1 else math.nan


def kappa_interval(truth: Sequence[int], predicted: Sequence[int], resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95 % percentile bootstrap interval of Cohen's kappa, resampling rows (seeded: reproducible)."""
    t, p = np.asarray(truth, dtype=int), np.asarray(predicted, dtype=int)
    if len(t) < 2:
        return (math.nan, math.nan)
    draws = np.random.default_rng(seed).integers(0, len(t), size=(resamples, len(t)))
    tt, pp = t[draws], p[draws]
    observed = (tt == pp).mean(axis=1)
    pt, pq = tt.mean(axis=1), pp.mean(axis=1)
    chance = pt * pq + (1 - pt) * (1 - pq)
    with np.errstate(invalid="ignore", divide="ignore"):
        kappas = np.where(chance < 1, (observed - chance) / (1 - chance), np.nan)
    kappas = kappas[~np.isnan(kappas)]
    if not len(kappas):
        return (math.nan, math.nan)
    lo, hi = np.quantile(kappas, [0.025, 0.975])
    return (float(lo), float(hi))


def mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b and c are the discordant pair counts (binomial test, p = 1/2)."""
    if b + c == 0:
        return 1.0
    return float(sps.binomtest(int(b), int(b + c), 0.5).pvalue)


def paired_difference(a: int, b: int, c: int, d: int) -> tuple[float, float, float]:
    """Difference p_B - p_A of two paired proportions, with Newcombe's (1998, method 10) 95 % interval.

    a: both 1; b: A=1, B=0; c: A=0, B=1; d: both 0 (for ASR: 1 = harmful)."""
    n = a + b + c + d
    if n == 0:
        return (math.nan, math.nan, math.nan)
    pa, pb = (a + b) / n, (a + c) / n
    la, ua = wilson(a + b, n)
    lb, ub = wilson(a + c, n)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(margins) if margins else 0.0
    diff = pb - pa
    lower = math.sqrt(max(0.0, (pb - lb) ** 2 - 2 * phi * (pb - lb) * (ua - pa) + (ua - pa) ** 2))
    upper = math.sqrt(max(0.0, (ub - pb) ** 2 - 2 * phi * (ub - pb) * (pa - la) + (pa - la) ** 2))
    return (diff, max(-1.0, diff - lower), min(1.0, diff + upper))


def exact_paired_difference(a: int, b: int, c: int, d: int) -> tuple[float, float, float]:
    """Difference p_B - p_A of two paired proportions with a 95 % interval that agrees with the exact McNemar test.

    Given the m = b + c discordant pairs, c ~ Binomial(m, pi) and p_B - p_A = (m / n)(2 pi - 1);
    the Clopper-Pearson interval on pi mapped through that line excludes 0 exactly when the
    exact test rejects at 5 %, but treats m as fixed. Each end is the wider of it and Newcombe's
    interval (which carries the variability of m), so a table's interval and p-value never
    disagree (checked over a grid of tables in the tests)."""
    n, m = a + b + c + d, b + c
    if n == 0:
        return (math.nan, math.nan, math.nan)
    diff, lo, hi = paired_difference(a, b, c, d)
    if m == 0:
        return (diff, lo, hi)
    ci = sps.binomtest(int(c), int(m), 0.5).proportion_ci(confidence_level=0.95, method="exact")
    scale = m / n
    return (diff, min(lo, scale * (2 * ci.low - 1)), max(hi, scale * (2 * ci.high - 1)))


def unpaired_difference(k_a: int, n_a: int, k_b: int, n_b: int) -> tuple[float, float, float]:
    """Difference p_B - p_A of two independent proportions with Newcombe's (1998) hybrid-score 95 % interval.

    For comparisons where only counts are known (e.g. published tables); on shared behaviors the
    paired interval is narrower."""
    if n_a <= 0 or n_b <= 0:
        return (math.nan, math.nan, math.nan)
    pa, pb = k_a / n_a, k_b / n_b
    (la, ua), (lb, ub) = wilson(k_a, n_a), wilson(k_b, n_b)
    diff = pb - pa
    return (diff, diff - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2), diff + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control); NaN entries stay NaN."""
    p = np.asarray(p_values, dtype=float)
    ok = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), np.nan)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def behaviors_needed(p_a: float, p_b: float, discordant: float | None = None, power: float = 0.8,
                     alpha: float = 0.05) -> int:
    """Behaviors a paired (McNemar) comparison needs to detect p_b - p_a with this power (Connor 1987).

    `discordant` is the expected share of behaviors on which the two set-ups disagree; unknown,
    it is taken as if the two were independent, p_a(1-p_b) + p_b(1-p_a) (the most it needs)."""
    delta = abs(p_b - p_a)
    if delta == 0:
        return math.inf  # type: ignore[return-value]
    psi = p_a * (1 - p_b) + p_b * (1 - p_a) if discordant is None else discordant
    if psi < delta:
        raise ValueError(f"discordant share {psi} is below the difference {delta}: impossible")
    za, zb = sps.norm.ppf(1 - alpha / 2), sps.norm.ppf(power)
    return math.ceil((za * math.sqrt(psi) + zb * math.sqrt(psi - delta * delta)) ** 2 / (delta * delta))
