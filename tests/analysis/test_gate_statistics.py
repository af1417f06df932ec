"""The gate's tests by simulation (numpy, seeded): the fixed-size margin test and the sequential design keep the
error rates they state (harness/analysis/margin.py, harness/analysis/sequential.py)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.margin import worse_p
from harness.analysis.sequential import Design, decide, looks

SIMULATIONS = 2000
SLACK = 3 * np.sqrt(0.05 * 0.95 / SIMULATIONS)  # three Monte Carlo standard errors at a 5 % rate


def steps(rng: np.random.Generator, shape: tuple[int, int], worsening: float, discordant: float) -> np.ndarray:
    """Per behavior +1 (moved the bad way), -1 (the good way), 0: a share `discordant` moved, mean `worsening`."""
    bad, good = (discordant + worsening) / 2, (discordant - worsening) / 2
    u = rng.random(shape)
    return np.where(u < bad, 1, np.where(u < bad + good, -1, 0))


def test_margin_test_is_mcnemar_at_zero_and_monotone_in_the_margin():
    assert worse_p(6, 0, 30, 0.0) == pytest.approx(0.5 ** 6)
    assert worse_p(0, 0, 30, 0.0) == 1.0 and worse_p(3, 3, 30, 0.0) > 0.5
    ps = [worse_p(12, 2, 30, t) for t in (0.0, 0.05, 0.1, 0.2, 0.33, 0.5)]
    assert ps == sorted(ps) and ps[0] < 0.01 < 0.5 < ps[-1]


@pytest.mark.parametrize("n", [30, 100])
@pytest.mark.parametrize("tolerance", [0.0, 0.1])
def test_margin_test_false_alarms_at_the_tolerance_stay_near_the_level(n, tolerance):
    """At a worsening exactly at the tolerance (the least favourable null), over several discordant shares."""
    rng = np.random.default_rng(0)
    for discordant in (0.2, 0.5, 0.9):
        d = steps(rng, (SIMULATIONS, n), tolerance, discordant)
        worse, better = (d == 1).sum(axis=1), (d == -1).sum(axis=1)
        alarms = np.mean([worse_p(int(w), int(b), n, tolerance) < 0.025 for w, b in zip(worse, better)])
        assert alarms <= 0.025 + SLACK, (discordant, alarms)


def test_looks_fall_every_look_and_at_the_end():
    assert looks(35, 10).tolist() == [10, 20, 30, 35] and looks(30, 10).tolist() == [10, 20, 30] and looks(4, 10).tolist() == [4]


@pytest.mark.parametrize(("tolerance", "discordant"), [(0.0, 0.25), (0.05, 0.5)])
def test_sequential_error_rates_hold_and_it_stops_early(tolerance, discordant):
    """alpha 0.05, miss 0.1, detect 0.2, looks of 10 up to 300 behaviors: at the tolerance (null) it fails at most
    alpha of the time; at tolerance + detect it passes at most `miss` of the time; better than the baseline, it stops
    on average well before the end."""
    design, alpha, n = Design(look=10, detect=0.2, miss=0.1), 0.05, 300
    rng = np.random.default_rng(1)
    null = decide(steps(rng, (SIMULATIONS, n), tolerance, discordant), tolerance, design, alpha)
    assert np.mean(null.decision == 1) <= alpha + SLACK
    bad = decide(steps(rng, (SIMULATIONS, n), tolerance + design.detect, discordant), tolerance, design, alpha)
    assert np.mean(bad.decision == -1) <= design.miss + SLACK
    assert np.mean(bad.decision == 1) >= 0.8
    better = decide(steps(rng, (SIMULATIONS, n), -0.1, discordant), tolerance, design, alpha)
    assert np.mean(better.decision == -1) >= 0.95 and better.used.mean() < n / 3


def test_the_anytime_p_value_agrees_with_the_decision():
    rng = np.random.default_rng(2)
    found = decide(steps(rng, (500, 100), 0.3, 0.5), 0.0, Design(), 0.05)
    assert (found.p[found.decision == 1] <= 0.05).all()
    assert ((found.p > 0) & (found.p <= 1)).all()


def tables(draws: int = 4000, seed: int = 7) -> str:
    """The simulated error rates docs/performance.md quotes (python tests/analysis/test_gate_statistics.py)."""
    from harness.analysis.stats import count_interval

    rng = np.random.default_rng(seed)

    def share(k: int) -> str:
        lo, hi = count_interval(k, draws)
        return f"{100 * k / draws:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"

    lines = ["fixed size, 30 behaviors at the tolerance, level 0.025: tolerance | discordant | false alarms"]
    for tolerance in (0.0, 0.1):
        for discordant in (0.2, 0.5, 0.9):
            d = steps(rng, (draws, 30), tolerance, discordant)
            alarms = sum(worse_p(int(w), int(b), 30, tolerance) < 0.025 for w, b in zip((d == 1).sum(1), (d == -1).sum(1)))
            lines.append(f"| {tolerance} | {discordant} | {share(alarms)} |")
    lines.append("sequential, up to 300 behaviors, Design(), alpha 0.025: tolerance | discordant | worsening | failed | "
                 "cleared | undecided | behaviors used")
    for tolerance in (0.0, 0.05):
        for discordant in (0.2, 0.5):
            for name, worsening in (("at the tolerance", tolerance), ("tolerance + 0.2", tolerance + 0.2),
                                    ("10 points better", -0.1)):
                found = decide(steps(rng, (draws, 300), worsening, discordant), tolerance, Design(), 0.025)
                cells = [share(int((found.decision == v).sum())) for v in (1, -1, 0)]
                lines.append(f"| {tolerance} | {discordant} | {name} | {' | '.join(cells)} | {found.used.mean():.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(tables())
