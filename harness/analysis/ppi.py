"""Prediction-powered ASR: the judge's verdicts on every sample, corrected by human labels on a random queue.

A judge errs differently on different outputs, so a calibration measured elsewhere does not carry over
(`harness.analysis.calibration`). Human labels on a *random* sample of the run's own outputs do: for each
judge verdict v (harmful, not harmful), the queue estimates how often a sample with that verdict is truly
harmful, a_v = P(human harmful | verdict v), and the judge's verdicts on all N samples give how often each
verdict occurs, pi_v. The ASR is sum_v pi_v a_v: prediction-powered inference (Angelopoulos et al. 2023)
with the judge recalibrated per verdict (the fully flexible form of PPI++'s power tuning for a binary
judge). It is unbiased whatever the judge's quality; a good judge makes the interval narrower than the
labels alone give, a useless one leaves it about as wide.

The 95 % interval takes Jeffreys-posterior draws of pi (from the verdict counts) and of each a_v (from the
queue's labels in that verdict's stratum) and reads the 2.5 / 97.5 % quantiles of sum_v pi_v a_v. Its
coverage is checked by simulation in the tests (weak and strong judges, 30 and 100 labels, 1,000 draws).
Labels chosen by hand (not drawn by a queue) must never enter it: they are not a random sample.

`labels_needed(width)` plans the queue: labels that bring the interval to a width, from the strata seen so far
(with no labels yet: the worst case a_v (1 - a_v) = 1/4, a stated prior).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.stats import Z95
from harness.analysis.tables import to_frame
from harness.errors import HarnessError
from harness.store import labels
from harness.store.folder import run_folders
from harness.store.records import RecordStore

DRAWS = 4000
SEED = 0
MIN_CELL_LABELS = 10  # a table cell with fewer queued labels borrows the pooled per-verdict rates
MIN_STRATUM_LABELS = 3  # ... and so does one with fewer than this in a verdict it has samples of


@dataclass(frozen=True)
class Strata:
    """Per judge verdict (0 = not harmful, 1 = harmful): samples in the population, queued labels, harmful labels."""

    samples: tuple[int, int]
    labelled: tuple[int, int]
    harmful: tuple[int, int]

    @classmethod
    def of(cls, verdicts: Sequence[int], labelled_verdicts: Sequence[int], labels: Sequence[int]) -> Strata:
        """`verdicts`: the judge's 0/1 on every sample; `labelled_verdicts`, `labels`: the judge's and the human's
        0/1 on the queued samples (a random subset of the same samples)."""
        v, lv, y = (np.asarray(x, dtype=int) for x in (verdicts, labelled_verdicts, labels))
        if len(lv) != len(y):
            raise ValueError("one human label per queued sample")
        return cls(samples=(int((v == 0).sum()), int((v == 1).sum())),
                   labelled=(int((lv == 0).sum()), int((lv == 1).sum())),
                   harmful=(int(((lv == 0) & (y == 1)).sum()), int(((lv == 1) & (y == 1)).sum())))

    @property
    def n_labels(self) -> int:
        return sum(self.labelled)


def rates(strata: Strata) -> tuple[float, float]:
    """a_v: the share of queued samples with verdict v that a human called harmful (Jeffreys mean when none)."""
    return tuple((k + 0.5) / (n + 1) if n == 0 else k / n for k, n in zip(strata.harmful, strata.labelled, strict=True))


def estimate(strata: Strata, pooled: Strata | None = None, draws: int = DRAWS,
             seed: int = SEED) -> tuple[float, float, float]:
    """The prediction-powered ASR and its 95 % interval (fractions). `pooled`: the per-verdict rates come from
    these labels instead (several cells' queues pooled; this cell's verdict counts still weigh them)."""
    source = pooled or strata
    total = sum(strata.samples)
    if total == 0:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    pi = rng.beta(strata.samples[1] + 0.5, strata.samples[0] + 0.5, draws)
    a = [rng.beta(k + 0.5, n - k + 0.5, draws) for k, n in zip(source.harmful, source.labelled, strict=True)]
    draws_ = (1 - pi) * a[0] + pi * a[1]
    a0, a1 = rates(source)
    share = strata.samples[1] / total
    point = (1 - share) * a0 + share * a1
    lo, hi = (float(q) for q in np.quantile(draws_, [0.025, 0.975]))
    return (point, min(lo, point), max(hi, point))


def labels_needed(strata: Strata, width: float) -> int:
    """Queued labels (in all, drawn at random) that bring the 95 % interval to about `width` (a fraction):
    n = (2 z / width)^2 sum_v pi_v a_v (1 - a_v), with a_v from the labels so far (1/4 where a stratum has none)."""
    if not 0 < width < 1:
        raise ValueError(f"width {width}: give a fraction in (0, 1), e.g. 0.1 for +-5 points")
    total = sum(strata.samples)
    if total == 0:
        raise ValueError("no judged samples to plan for")
    spread = 0.0
    for v in (0, 1):
        share = strata.samples[v] / total
        n, k = strata.labelled[v], strata.harmful[v]
        spread += share * (0.25 if n == 0 else (k / n) * (1 - k / n))
    spread = max(spread, 1e-4)  # all labels agree so far: plan as if a few would not
    return min(total, math.ceil((2 * Z95 / width) ** 2 * spread))


def queued(labels: Mapping[str, object]) -> dict[str, int]:
    """key -> 1 (harmful) / 0 (not harmful) for labels a random queue drew; unclear and hand-picked ones left out."""
    return {key: int(label.label == "harmful") for key, label in labels.items()
            if getattr(label, "queue", "") and label.label in ("harmful", "not_harmful")}


def strata_of(rows: pd.DataFrame, human: Mapping[str, int]) -> Strata:
    """Strata of a records frame's ASR population (harmful behaviors, judged) and the queued labels among it."""
    population = rows[(rows["label"] == "harmful") & ~rows["error"] & rows["harmful"].notna()]
    verdicts = population["harmful"].astype(bool).astype(int).to_numpy()
    labelled = population["key"].isin(list(human)).to_numpy()
    return Strata.of(verdicts, verdicts[labelled], [human[k] for k in population.loc[labelled, "key"]])


def add_ppi(table: pd.DataFrame, frame: pd.DataFrame, labels: Mapping[str, object], keys: Sequence[str]) -> list[str]:
    """Add asr_ppi / _lo / _hi (%), ppi_labels (queued labels used) and ppi_scope (cell: the cell's own labels;
    pooled: every cell's labels, weighed by this cell's verdicts) to `table` rows matched on `keys`; return the
    table notes. Nothing is added when no label was drawn by a queue."""
    human = queued(labels)
    hand = sum(1 for label in labels.values() if not getattr(label, "queue", ""))
    if not human:
        return [f"{hand} human labels chosen by hand are shown in the browser; none was drawn by a random queue, so "
                "there is no prediction-powered ASR (harness labels queue draws one)"] if hand else []
    pooled = strata_of(frame, human)
    rows = []
    for key, part in frame.groupby(list(keys), dropna=False, sort=True):
        strata = strata_of(part, human)
        own = strata.n_labels >= MIN_CELL_LABELS and all(
            labelled >= MIN_STRATUM_LABELS for samples, labelled in zip(strata.samples, strata.labelled, strict=True) if samples)
        point, lo, hi = estimate(strata, None if own else pooled)
        rows.append((*(key if isinstance(key, tuple) else (key,)), 100 * point, 100 * lo, 100 * hi,
                     strata.n_labels if own else pooled.n_labels, "cell" if own else "pooled"))
    names = [k.removeprefix("param.") for k in keys]
    found = pd.DataFrame(rows, columns=[*names, "asr_ppi", "asr_ppi_lo", "asr_ppi_hi", "ppi_labels", "ppi_scope"])
    merged = table.merge(found, on=names, how="left")
    for column in found.columns[len(names):]:
        table[column] = merged[column].to_numpy()
    scopes = found["ppi_scope"].value_counts()
    return [f"prediction-powered ASR (asr_ppi): the judge's verdicts on every sample corrected by {len(human)} human "
            f"labels drawn by random queues ({scopes.get('cell', 0)} rows on their own labels, at least "
            f"{MIN_CELL_LABELS} and {MIN_STRATUM_LABELS} per verdict; {scopes.get('pooled', 0)} on all rows' labels pooled); valid whatever the judge's "
            f"quality" + (f"; {hand} labels chosen by hand are shown in the browser but never enter it" if hand else "")]


def plan(runs: Sequence[Path], width: float) -> str:
    """How many more queued labels bring the pooled prediction-powered ASR's 95 % interval to `width` points."""
    if not 0 < width < 100:
        raise HarnessError(f"--width {width}: give the interval's width in points, between 0 and 100 (e.g. 10)")
    folders = run_folders(runs)
    records = [r for f in folders for r in RecordStore(f / "records.jsonl").load().values()]
    frame = to_frame(records)
    if frame.empty or not ((frame["label"] == "harmful") & ~frame["error"] & frame["harmful"].notna()).any():
        raise HarnessError(f"{', '.join(map(str, runs))}: no judge verdicts on harmful behaviors to plan for "
                           "(judge errors only, or benign benchmarks)")
    human = queued({key: changes[-1] for f in folders for key, changes in labels.read(f).items()})
    strata = strata_of(frame, human)
    needed = labels_needed(strata, width / 100)
    more = max(0, needed - strata.n_labels)
    basis = (f"from the {strata.n_labels} queued labels so far" if strata.n_labels
             else "no queued labels yet: planned for the worst case, every verdict a coin flip to a human")
    return (f"{more} more queued labels ({needed} in all, of {sum(strata.samples)} judged samples) bring the 95 % "
            f"interval of the prediction-powered ASR to about {width:g} points ({basis}); "
            f"draw them with: harness labels queue {' '.join(map(str, runs))} --n {max(more, 1)}")
