"""`python -m harness gate`: the command line of `harness.analysis.gate` (arguments, exit codes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from scipy import stats as sps

from harness.analysis import gate
from harness.analysis.fronts import FRONTS
from harness.analysis.sequential import Design
from harness.cli.exits import exits_cleanly


def make_parser() -> argparse.ArgumentParser:
    """The command's arguments (also what the docs test parses the guides' commands with)."""
    parser = argparse.ArgumentParser(prog="python -m harness gate", description=gate.__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, nargs="+",
                        help="run folders holding records.jsonl (every front, paired), or one table: a folder holding "
                             "asr.csv, or the asr.csv itself")
    parser.add_argument("--baseline", type=Path, required=True, help="baseline table, .csv or .json (outcomes beside it)")
    for front in FRONTS.values():
        parser.add_argument(front.option, type=float, default=0.0, dest=f"tolerance_{front.name}",
                            help=f"{front.name}: the {front.event} rate may {front.direction} by this much (absolute, 0..1)")
    parser.add_argument("--tolerance-z", type=float, default=1.96,
                        help="one-sided level: fail when Holm's p < the normal tail beyond this (1.96: 0.025)")
    parser.add_argument("--min-abs", type=float, default=0.0, help="and the worsening exceeds this many percentage points")
    parser.add_argument("--sequential", action="store_true",
                        help="take the behaviors a look at a time and stop when every row is decided (exit 3: run more)")
    parser.add_argument("--look", type=int, default=Design.look, help="--sequential: behaviors per look")
    parser.add_argument("--detect", type=float, default=Design.detect,
                        help="--sequential: the worsening beyond the tolerance it must catch (absolute, 0..1)")
    parser.add_argument("--miss", type=float, default=Design.miss,
                        help="--sequential: at most this chance to pass a row worse by tolerance + --detect")
    parser.add_argument("--write-baseline", action="store_true", help="write the run's table as the baseline and exit")
    return parser


MEANINGS = [("new", "only in the run (warning: add them to the baseline)"),
            ("skipped", "without a measurement on one side"),
            ("missing", "in the baseline but not in the run"),
            ("undecided", "not decided yet by the sequential design: run more behaviors")]


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    """The gate's command line; returns gate.GateExit.PASSED, FAILED or MORE, exits gate.GateExit.UNDECIDED on a HarnessError."""
    parser = make_parser()
    args = parser.parse_args(gate.joined_numbers(sys.argv[1:] if argv is None else argv))
    tolerances = {name: getattr(args, f"tolerance_{name}") for name in FRONTS}
    design = Design(look=args.look, detect=args.detect, miss=args.miss) if args.sequential else None
    gate.check_options(args.tolerance_z, args.min_abs, tolerances, design)
    run, run_behaviors = gate.load_run(args.run)
    if args.write_baseline:
        gate.write_baseline(run, args.baseline, run_behaviors)
        print(f"baseline written: {args.baseline} ({len(run)} rows"
              f"{', with per-behavior outcomes' if run_behaviors is not None else ''})")
        return gate.GateExit.PASSED
    baseline = gate.load_table(args.baseline, "--baseline")
    names = (f"run {' '.join(map(str, args.run))}", f"--baseline {args.baseline}")
    diff = gate.compare(run, baseline, args.tolerance_z, args.min_abs, run_behaviors,
                        gate.load_behaviors(args.baseline, "--baseline"), names=names, tolerances=tolerances, design=design)
    shown = diff.dropna(axis=1, how="all")
    formats = tuple(".4f" if c in ("p", "p_holm") else ".2f" if c in ("tolerance", "z") else ".0f" if c == "used" else ".1f"
                    for c in shown.columns)
    print(shown.to_markdown(index=False, floatfmt=formats))
    alpha = sps.norm.sf(args.tolerance_z)
    print("worse: points in the bad direction (run - baseline on harm, baseline - run on answered and correct), "
          "95 % paired interval; tolerances: " + ", ".join(f"{name} {value:g}" for name, value in tolerances.items()))
    counts = diff["status"].value_counts()
    for status, meaning in [*MEANINGS, ("FAIL", f"worse beyond the tolerance and noise (Holm's p < {alpha:.3g}"
                                                 f"{' split over the rows, sequentially' if design else ''}, "
                                                 f"worse > {args.min_abs} points)")]:
        if counts.get(status):
            print(f"{status}: {counts[status]} row(s) {meaning}")
    if design is not None:
        used = diff[diff["test"].str.startswith("sequential")]
        if not used.empty:
            per = used.groupby(used["benchmark"] if "benchmark" in used else pd.Series("", index=used.index))["used"].max()
            print("sequential: behaviors used " + ", ".join(f"{b or 'all'} {int(n)}" for b, n in per.items())
                  + f" (look {design.look}, detect {design.detect:g}, miss {design.miss:g})")
    if gate.failed(diff):
        print("gate: FAILED")
        return gate.GateExit.FAILED
    if gate.undecided(diff):
        print("gate: undecided, run more behaviors")
        return gate.GateExit.MORE
    print("gate: passed")
    return gate.GateExit.PASSED


if __name__ == "__main__":
    sys.exit(main())
