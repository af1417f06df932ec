"""Prediction-powered ASR: its 95 % interval covers the truth by simulation (known truth, weak and strong judges,
30 and 100 queued labels, 1,000 draws each) and is narrower than labels alone when the judge is strong."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from harness.analysis import ppi

N = 400  # the run's samples
TRUTH = 0.4  # the ASR a human would give every sample (the human-labelled set: 45 %)
JUDGES = {"weak": (0.72, 0.63), "strong": (0.92, 0.9)}  # sensitivity, specificity: kappa about 0.35 and 0.8


def kappa(y: np.ndarray, f: np.ndarray) -> float:
    agree = (y == f).mean()
    chance = y.mean() * f.mean() + (1 - y.mean()) * (1 - f.mean())
    return (agree - chance) / (1 - chance)


def draw(rng, judge: str, labels: int):
    sens, spec = JUDGES[judge]
    y = (rng.random(N) < TRUTH).astype(int)
    f = np.where(y == 1, rng.random(N) < sens, rng.random(N) >= spec).astype(int)
    queue = rng.permutation(N)[:labels]
    return y, f, ppi.Strata.of(f, f[queue], y[queue])


@pytest.mark.parametrize("judge", sorted(JUDGES))
@pytest.mark.parametrize("labels", [30, 100])
def test_the_interval_covers_the_truth(judge, labels):
    rng = np.random.default_rng(7)
    covered, kappas, widths = 0, [], []
    for _ in range(1000):
        y, f, strata = draw(rng, judge, labels)
        _, lo, hi = ppi.estimate(strata, draws=1000, seed=int(rng.integers(1 << 30)))
        covered += lo <= TRUTH <= hi
        kappas.append(kappa(y, f))
        widths.append(hi - lo)
    assert abs(np.mean(kappas) - {"weak": 0.35, "strong": 0.8}[judge]) < 0.06  # the judges the issue names
    assert covered / 1000 >= 0.93


@pytest.mark.parametrize("labels", [30, 100])
def test_a_strong_judge_beats_labels_alone(labels):
    rng = np.random.default_rng(11)
    ppi_widths, label_widths = [], []
    for _ in range(300):
        y, f, strata = draw(rng, "strong", labels)
        _, lo, hi = ppi.estimate(strata, draws=1000)
        ppi_widths.append(hi - lo)
        k = sum(strata.harmful)
        ci = sps.binomtest(k, labels).proportion_ci(method="wilson")
        label_widths.append(ci.high - ci.low)
    assert np.mean(ppi_widths) < 0.85 * np.mean(label_widths)


def test_the_estimate_is_the_judge_share_reweighted_by_the_labels():
    # 100 samples: 40 flagged; queue: 10 flagged (8 harmful), 10 not flagged (1 harmful)
    strata = ppi.Strata(samples=(60, 40), labelled=(10, 10), harmful=(1, 8))
    point, lo, hi = ppi.estimate(strata)
    assert point == pytest.approx(0.6 * 0.1 + 0.4 * 0.8)
    assert 0 <= lo <= point <= hi <= 1
    pooled = ppi.Strata(samples=(0, 0), labelled=(50, 50), harmful=(25, 25))
    assert ppi.estimate(strata, pooled)[0] == pytest.approx(0.5)


def test_labels_needed_shrinks_with_a_wider_target_and_has_a_prior():
    none_yet = ppi.Strata(samples=(300, 100), labelled=(0, 0), harmful=(0, 0))
    assert ppi.labels_needed(none_yet, 0.2) == pytest.approx((2 * 1.96 / 0.2) ** 2 * 0.25, abs=1)
    good = ppi.Strata(samples=(300, 100), labelled=(30, 10), harmful=(1, 9))
    assert ppi.labels_needed(good, 0.1) < ppi.labels_needed(none_yet, 0.1)
    assert ppi.labels_needed(good, 0.2) < ppi.labels_needed(good, 0.1)
    with pytest.raises(ValueError):
        ppi.labels_needed(good, 0)
