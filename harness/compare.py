"""Paired comparison of two runs on the behaviors they share.

    python -m harness.compare RUN_A RUN_B [--out results/compare]
    python -m harness.compare --power 0.30 0.50 [--discordant 0.3]   # behaviors needed to see 30 % -> 50 %

Per configuration both runs have (attack parameters such as k; or the one configuration of
each), on the harmful behaviors judged in both: ASR of A and of B, the paired difference
B - A (points) with its exact 95 % interval, the exact McNemar p-value on the discordant
behaviors (b: broken only in A, c: only in B; a: broken in both, d: in neither) and the
Holm-adjusted p across the rows. A
behavior with several samples counts as broken when any sample is harmful. A row whose Holm
p is 0.05 or more is reported as no measured difference (its interval, unadjusted, holds 0
exactly when the unadjusted p is 0.05 or more).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness import paired, report, tables
from harness.cli import exits_cleanly
from harness.errors import DataError, HarnessError
from harness.outputs import output_folder
from harness.stats import behaviors_needed


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
                        "`python -m harness.report` (its asr_paired.csv pairs every set-up)")
    judges = sorted(set(frame.loc[frame["label"] == "harmful", "judge_id"]))
    if len(judges) > 1:
        raise DataError(f"{folder}: verdicts of {len(judges)} judges ({', '.join(judges)}); re-judge the run with one "
                        "judge (`python -m harness.rejudge`) before comparing")
    return paired.outcomes(frame)


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


def power(args: argparse.Namespace) -> None:
    p_a, p_b = args.power
    if not (0 <= p_a <= 1 and 0 <= p_b <= 1) or p_a == p_b:
        raise HarnessError(f"--power {p_a} {p_b}: give two different ASRs as fractions in [0, 1], e.g. --power 0.3 0.5")
    if not 0 < args.target_power < 1:
        raise HarnessError(f"--target-power {args.target_power}: give a power strictly between 0 and 1, e.g. 0.8")
    if args.discordant is not None and not 0 < args.discordant <= 1:
        raise HarnessError(f"--discordant {args.discordant}: give a share of behaviors in (0, 1], e.g. 0.3")
    try:
        n = behaviors_needed(p_a, p_b, discordant=args.discordant, power=args.target_power)
    except ValueError as exc:
        raise HarnessError(f"--discordant {args.discordant}: {exc}") from None
    assumed = "if the two set-ups broke behaviors independently" if args.discordant is None else \
        f"with {args.discordant:.0%} of behaviors discordant"
    print(f"{n} behaviors give a paired (McNemar, two-sided 5 %) comparison {args.target_power:.0%} power to detect "
          f"{100 * p_a:.0f} % -> {100 * p_b:.0f} % {assumed}")


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="two run folders (or records.jsonl files): A then B")
    parser.add_argument("--out", type=Path, default=None, help="also write compare.csv and compare.md here")
    parser.add_argument("--power", nargs=2, type=float, metavar=("ASR_A", "ASR_B"),
                        help="instead: behaviors needed to detect ASR_A -> ASR_B (fractions)")
    parser.add_argument("--discordant", type=float, default=None, help="expected share of behaviors the two disagree on")
    parser.add_argument("--target-power", type=float, default=0.8)
    args = parser.parse_args(argv)
    if args.power:
        if args.runs or args.out:
            raise HarnessError("--power answers a planning question and reads no runs: give either two run folders "
                               "or --power ASR_A ASR_B, not both")
        return power(args)
    if args.discordant is not None or args.target_power != parser.get_default("target_power"):
        raise HarnessError("--discordant and --target-power go with --power; comparing two runs takes neither")
    if len(args.runs) != 2:
        raise HarnessError(f"give two run folders, RUN_A RUN_B (got {len(args.runs)})")
    a, b = args.runs
    if args.out:
        output_folder(args.out, (a, b))
    table = paired.compare_runs(load_outcomes(a), load_outcomes(b), names=(str(a), str(b)))
    legend = ("n: behaviors judged in both; a: broken in both, b: only in A, c: only in B, d: in neither; "
              "diff = B - A in points (exact interval), p: exact McNemar on b and c, p_holm: Holm across the rows")
    text = f"A = {a}\nB = {b}\n\n{paired.markdown(table)}\n\n{legend}\n\n" + "\n".join(verdicts(table)) + "\n"
    print(text)
    if args.out:
        table.to_csv(args.out / "compare.csv", index=False)
        (args.out / "compare.md").write_text(text)
    return None


if __name__ == "__main__":
    main()
