"""Paired comparison of two runs on the behaviors they share.

    python -m harness compare RUN_A RUN_B [--out results/compare]
    python -m harness compare --power 0.30 0.50 [--discordant 0.3]   # behaviors needed to see 30 % -> 50 %

Per configuration both runs have (attack parameters such as k; or the one configuration of
each), on the harmful behaviors judged in both: ASR of A and of B, the paired difference
B - A (points) with its exact 95 % interval, the exact McNemar p-value on the discordant
behaviors (b: broken only in A, c: only in B; a: broken in both, d: in neither; the printed table names
them so, and a legend follows it) and the Holm-adjusted p across the rows. A
behavior with several samples counts as broken when any sample is harmful. A row whose Holm
p is 0.05 or more is reported as no measured difference (its interval, unadjusted, holds 0
exactly when the unadjusted p is 0.05 or more).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.analysis import paired, report, tables
from harness.errors import DataError


def load_outcomes(folder: Path) -> pd.DataFrame:
    """Per-behavior outcomes of one run (one set-up: model and defense). A folder holding several set-ups
    (a merged sweep) is refused: its behaviors would be counted once per set-up."""
    path = folder / "records.jsonl" if folder.is_dir() else folder
    if not path.is_file():
        raise DataError(f"{folder}: no records.jsonl there; give a run folder written by `python -m harness`")
    records = report.load_folders([path])
    if not records:
        raise DataError(f"{path}: holds no readable records (empty, or written by another harness version)")
    frame = tables.to_frame(records)
    setups = sorted({f"{m} / {d}" for m, d in zip(frame["model"], frame["defense"], strict=True)})
    if len(setups) > 1:
        raise DataError(f"{folder}: holds {len(setups)} set-ups ({'; '.join(setups[:4])}{' ...' if len(setups) > 4 else ''}); "
                        "compare takes one set-up per side: give one run folder each, or merge them with "
                        "`python -m harness report` (its asr_paired.csv pairs every set-up)")
    judges = sorted(set(frame.loc[frame["label"] == "harmful", "judge_id"]))
    if len(judges) > 1:
        raise DataError(f"{folder}: verdicts of {len(judges)} judges ({', '.join(judges)}); re-judge the run with one "
                        "judge (`python -m harness rejudge`) before comparing")
    return paired.outcomes(frame)


# The four cells of the paired table, named in the printed table itself (compare.csv keeps the short names a-d).
CELLS = {"a": "a: both", "b": "b: A only", "c": "c: B only", "d": "d: neither"}
LEGEND = ("n: harmful behaviors judged in both runs; a, b, c, d: how many of them were broken (any sample judged "
          "harmful) in both runs, only in A, only in B, in neither; asr_a, asr_b: ASR % of A and B on them; "
          "diff = B - A in points with its exact 95 % interval; p: exact McNemar test on b and c (only behaviors the "
          "two runs disagree on carry information); p_holm: Holm-adjusted across the rows")


def markdown(table: pd.DataFrame) -> str:
    """The comparison as printed: the a-d columns named by what they count, the legend right below."""
    return f"{paired.markdown(table.rename(columns=CELLS))}\n\n{LEGEND}"


def verdicts(table: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    lines = []
    for row in table.itertuples():
        if not row.n:
            lines.append(f"{row.configuration}: no behavior judged in both runs; nothing to compare")
        elif row.p_holm < alpha:
            lines.append(f"{row.configuration}: B - A = {row.diff:+.1f} points (95% CI {row.diff_lo:+.1f} to {row.diff_hi:+.1f}), "
                         f"significant after Holm (p = {row.p_holm:.3g}, n = {row.n})")
        else:
            lines.append(f"{row.configuration}: no measured difference (B - A = {row.diff:+.1f} points, 95% CI "
                         f"{row.diff_lo:+.1f} to {row.diff_hi:+.1f}, Holm p = {row.p_holm:.3g}, n = {row.n})")
    return lines
