"""One-sided paired test: did a measurement get worse by more than a tolerance?

Per behavior, a baseline and a run each have an event (broken, answered, correct). With `worse` the
behaviors whose event moved the bad way (e.g. not broken -> broken) and `better` those that moved the
good way, out of n shared behaviors, the worsening is D = (worse - better) / n. The gate tests
H0: D <= tolerance against H1: D > tolerance:

- tolerance 0: the exact one-sided McNemar test (binomial on the discordant pairs, p = 1/2), the test
  `stats.mcnemar` and `stats.exact_paired_difference` are built on;
- tolerance > 0: Tango's (1998) score test for a paired difference against a margin, with the restricted
  maximum-likelihood estimate of the discordant shares under H0. (The exact conditional test cannot hold a
  margin: the margin is on D, which depends on how many pairs are discordant.) Checked by simulation in
  tests/analysis/test_gate_statistics.py: its false-alarm rate stays near the nominal level at 30 and 100 behaviors.
"""

from __future__ import annotations

import math

from scipy import stats as sps


def worse_p(worse: int, better: int, n: int, tolerance: float) -> float:
    """One-sided p-value of H0: (worse - better) / n <= tolerance; 1 when nothing is shared."""
    if n <= 0:
        return 1.0
    if tolerance == 0:
        m = worse + better
        return float(sps.binomtest(worse, m, 0.5, alternative="greater").pvalue) if m else 1.0
    d = tolerance
    if d >= 1:
        return 1.0  # no worsening can exceed the whole scale
    # restricted MLE of P(better) under D = d: 2n q^2 - B q - C = 0
    b_coef = worse * (1 + d) + better * (1 - d) - 2 * n * d
    c_coef = better * d * (1 - d)
    q = (b_coef + math.sqrt(b_coef * b_coef + 8 * n * c_coef)) / (4 * n)
    variance = n * (2 * q + d - d * d)
    excess = worse - better - n * d
    if variance <= 0:
        return 1.0 if excess <= 0 else 0.0
    return float(sps.norm.sf(excess / math.sqrt(variance)))
