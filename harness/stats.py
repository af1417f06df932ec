"""Statistics every table shares: intervals on proportions (more in the trust-statistics work).

`wilson(k, n)` is the 95 % Wilson score interval for k successes in n trials, the interval the
ASR tables use when each behavior contributes one sample.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054


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
