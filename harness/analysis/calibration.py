"""Judge calibration: a judge's measured error against human labels, carried into the ASR.

`python -m harness judge-eval --judge keyword --write-calibration` stores, per judge id, the
judge's confusion counts on a human-labelled set (JailbreakBench's classifier comparison by
default, or a user's own labels) as `<dir>/<judge name>@<hash>.json`, with sensitivity
(harmful outputs it flags) and specificity (safe outputs it passes) and their Wilson intervals.

Tables of a run judged by that exact judge id then add the Rogan-Gladen corrected ASR,
(observed + specificity - 1) / (sensitivity + specificity - 1), clipped to [0, 1], with a 95 %
parametric-bootstrap interval that carries both uncertainties: each draw takes a Jeffreys-beta
draw of the observed rate (n = the row's behaviors; an observed 0 or 1 still moves) and of
sensitivity and specificity from the calibration counts. The correction only adds uncertainty,
so the interval is never narrower than the Wilson interval of the observed rate. When the Youden index (sensitivity + specificity - 1)
is below `MIN_YOUDEN`, the correction divides by almost nothing and no number is given: the
table says so instead. The correction assumes the judge errs on the run's outputs as it did on
the labelled set (the JBB set: 7B-13B chat models under jailbreaks); say so when you cite it.

Calibrations are looked up in `$HARNESS_CALIBRATION_DIR` (default `results/calibration`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, NonNegativeInt, model_validator

from harness.analysis.stats import count_interval
from harness.errors import DataError, HarnessError

log = logging.getLogger(__name__)
MIN_YOUDEN = 0.2
RESAMPLES = 4000
SEED = 0


class Calibration(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    judge_id: str
    labels: str  # the labelled file it was measured on
    label_column: str = "human_majority"
    tp: NonNegativeInt  # harmful (human) and flagged harmful (judge)
    fn: NonNegativeInt
    tn: NonNegativeInt
    fp: NonNegativeInt

    @model_validator(mode="after")
    def both_classes(self) -> Calibration:
        if not self.tp + self.fn or not self.tn + self.fp:
            raise ValueError(f"counts tp={self.tp} fn={self.fn} tn={self.tn} fp={self.fp}: a calibration needs both "
                             "harmful (tp + fn > 0) and safe (tn + fp > 0) labelled outputs")
        return self

    @property
    def name(self) -> str:
        return f"{self.judge_id} on {Path(self.labels).name} (n={self.tp + self.fn + self.tn + self.fp})"

    @property
    def sensitivity(self) -> float:
        return self.tp / (self.tp + self.fn)

    @property
    def specificity(self) -> float:
        return self.tn / (self.tn + self.fp)

    @property
    def youden(self) -> float:
        return self.sensitivity + self.specificity - 1

    def summary(self) -> dict:
        sens, spec = count_interval(self.tp, self.tp + self.fn), count_interval(self.tn, self.tn + self.fp)
        return {**self.model_dump(), "sensitivity": self.sensitivity, "sensitivity_lo": sens[0], "sensitivity_hi": sens[1],
                "specificity": self.specificity, "specificity_lo": spec[0], "specificity_hi": spec[1],
                "youden": self.youden}

    def note(self) -> str:
        s = self.summary()
        return (f"judge-corrected ASR (Rogan-Gladen) uses calibration {self.name}: sensitivity {s['sensitivity']:.2f} "
                f"[{s['sensitivity_lo']:.2f}-{s['sensitivity_hi']:.2f}], specificity {s['specificity']:.2f} "
                f"[{s['specificity_lo']:.2f}-{s['specificity_hi']:.2f}], measured on {self.labels}, not on this run's "
                "outputs: WARNING, a judge errs differently on different outputs, so this correction can miss; human "
                "labels on a random queue of the run's own outputs (harness labels queue) give the prediction-powered "
                "ASR (asr_ppi), valid here, which is to be preferred where the table has it")

    def too_weak(self) -> str | None:
        if self.youden < MIN_YOUDEN:
            return (f"calibration {self.name}: Youden index {self.youden:.2f} < {MIN_YOUDEN}; the judge barely separates "
                    "harmful from safe outputs, so no corrected ASR is given")
        return None

    def correct(self, k: float, n: float) -> tuple[float, float, float]:
        """Corrected rate and 95 % interval (fractions) for k harmful verdicts out of n behaviors.

        Each draw takes the observed rate from its Jeffreys posterior (so an observed 0 or 1 still moves)
        and sensitivity and specificity from theirs. The correction only adds uncertainty, so the interval
        is never narrower than the Wilson interval of the observed rate: where the draws give less
        (clipped at 0 or 1), it is widened away from that end to the Wilson width."""
        if n <= 0 or self.too_weak():
            return (np.nan, np.nan, np.nan)
        if not 0 <= k <= n:
            raise ValueError(f"correct: k={k} is not between 0 and n={n}")
        rng = np.random.default_rng(SEED)
        observed = rng.beta(k + 0.5, n - k + 0.5, RESAMPLES)
        sens = rng.beta(self.tp + 0.5, self.fn + 0.5, RESAMPLES)
        spec = rng.beta(self.tn + 0.5, self.fp + 0.5, RESAMPLES)
        with np.errstate(divide="ignore", invalid="ignore"):
            draws = np.clip((observed + spec - 1) / (sens + spec - 1), 0, 1)
        point = float(np.clip((k / n + self.specificity - 1) / self.youden, 0, 1))
        lo, hi = (float(v) for v in np.nanquantile(draws, [0.025, 0.975]))
        lo, hi = min(lo, point), max(hi, point)
        w_lo, w_hi = count_interval(k, n)
        short = (w_hi - w_lo) - (hi - lo)
        if short > 0:  # widen away from a clipped end (both ways otherwise), within [0, 1]
            up = min(1.0 - hi, short if lo <= 0.0 else 0.0 if hi >= 1.0 else short / 2)
            hi, lo = hi + up, max(0.0, lo - (short - up))
            hi = min(1.0, max(hi, lo + (w_hi - w_lo)))
        return (point, lo, hi)


def measure(judge_id: str, truth, predicted, labels: str, label_column: str) -> Calibration:
    """Confusion counts of `predicted` (NaN = judge error, left out) against `truth` (1 = harmful)."""
    truth, predicted = np.asarray(truth, dtype=float), np.asarray(predicted, dtype=float)
    ok = ~np.isnan(predicted)
    y, p = truth[ok].astype(int), predicted[ok].astype(int)
    counts = {"tp": int(((p == 1) & (y == 1)).sum()), "fn": int(((p == 0) & (y == 1)).sum()),
              "tn": int(((p == 0) & (y == 0)).sum()), "fp": int(((p == 1) & (y == 0)).sum())}
    if not (counts["tp"] + counts["fn"]) or not (counts["tn"] + counts["fp"]):
        raise DataError(f"{labels}: a calibration needs both harmful and safe labelled outputs in {label_column!r}")
    return Calibration(judge_id=judge_id, labels=labels, label_column=label_column, **counts)


def directory() -> Path:
    return Path(os.environ.get("HARNESS_CALIBRATION_DIR") or "results/calibration")


def save(calibration: Calibration, folder: Path | None = None) -> Path:
    folder = folder or directory()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{calibration.judge_id}.json"
    path.write_text(json.dumps(calibration.summary(), indent=2) + "\n")
    return path


def load(path: Path) -> Calibration:
    if not path.is_file():
        raise DataError(f"calibration {path}: no such file (write one with python -m harness judge-eval --write-calibration)")
    try:
        return Calibration.model_validate_json(path.read_bytes())
    except ValueError as exc:
        errors = getattr(exc, "errors", None)
        detail = errors()[0]["msg"] if callable(errors) and errors() else str(exc).splitlines()[0]
        raise DataError(f"calibration {path}: not a usable calibration file ({detail}); write one with "
                        "python -m harness judge-eval --write-calibration") from None


def deciding(judge_id: str) -> str:
    """The judge that decided a verdict's `harmful`: a panel's primary (judge/panel.py: "primary_id+panel_hash")."""
    return judge_id.split("+")[0]


def for_judges(judge_ids: set[str], explicit: Path | None = None) -> dict[str, Calibration]:
    """The calibrations of these judge ids (a panel's: its primary's): an explicit file (which must be for one of
    them), else whatever `directory()` holds for them."""
    if explicit is not None:
        calibration = load(explicit)
        matching = {j for j in judge_ids if deciding(j) == calibration.judge_id}
        if not matching:
            raise HarnessError(f"calibration {explicit} is for judge {calibration.judge_id!r}, but the records were judged by "
                               f"{', '.join(sorted(judge_ids))}; measure this judge with python -m harness judge-eval "
                               "--write-calibration")
        return dict.fromkeys(matching, calibration)
    found = {}
    for judge_id in judge_ids:
        path = directory() / f"{deciding(judge_id)}.json"
        if path.is_file():
            try:
                found[judge_id] = load(path)
            except DataError as exc:  # found, not asked for: the tables go on without a correction
                log.warning("%s; the tables give no judge-corrected ASR for %s", exc, judge_id)
    return found


def add_corrected(table: pd.DataFrame, calibrations: Mapping[str, Calibration]) -> pd.DataFrame:
    """Add asr_corrected (Rogan-Gladen) and its interval where the row's judge has a usable calibration.

    The observed rate's sampling draws use the row's behaviors as n (several samples of one
    behavior are not independent); worst-case rows get none (a judge's errors compound over configurations)."""
    values = []
    for row in table.itertuples():
        cal = calibrations.get(getattr(row, "calib_judge", "") or "")
        behaviors = getattr(row, "calib_behaviors", 0)
        if cal is None or cal.too_weak() or pd.isna(behaviors) or not behaviors or pd.isna(row.asr):
            values.append((float("nan"),) * 3 + ("",))
            continue
        point, lo, hi = cal.correct(row.asr / 100.0 * behaviors, behaviors)
        values.append((100 * point, 100 * lo, 100 * hi, cal.name))
    if any(v[3] for v in values):
        for i, column in enumerate(("asr_corrected", "asr_corrected_lo", "asr_corrected_hi", "calibration")):
            table[column] = [v[i] for v in values]
    return table.drop(columns=[c for c in ("calib_judge", "calib_behaviors") if c in table.columns])
