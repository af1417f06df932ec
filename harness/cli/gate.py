"""`python -m harness gate`: the command line of `harness.analysis.gate` (arguments, exit codes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from scipy import stats as sps

from harness.analysis import gate
from harness.cli.exits import exits_cleanly


def make_parser() -> argparse.ArgumentParser:
    """The command's arguments (also what the docs test parses the guides' commands with)."""
    parser = argparse.ArgumentParser(prog="python -m harness gate", description=gate.__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="run folder holding asr.csv (or the asr.csv itself)")
    parser.add_argument("--baseline", type=Path, required=True, help="baseline ASR table, .csv or .json")
    parser.add_argument("--tolerance-z", type=float, default=1.96, help="fail when the one-sided z of the rise exceeds this")
    parser.add_argument("--min-abs", type=float, default=0.0, help="and the rise exceeds this many percentage points")
    parser.add_argument("--write-baseline", action="store_true", help="write the run's table as the baseline and exit")
    return parser


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    """The gate's command line; returns gate.GateExit.PASSED or FAILED, exits gate.GateExit.UNDECIDED on a HarnessError."""
    parser = make_parser()
    args = parser.parse_args(gate.joined_numbers(sys.argv[1:] if argv is None else argv))
    gate.check_options(args.tolerance_z, args.min_abs)
    run = gate.load_table(args.run, "run")
    run_behaviors = gate.load_behaviors(args.run, "run")
    if args.write_baseline:
        gate.write_baseline(run, args.baseline, run_behaviors)
        print(f"baseline written: {args.baseline} ({len(run)} rows"
              f"{', with per-behavior outcomes' if run_behaviors is not None else ''})")
        return gate.GateExit.PASSED
    baseline = gate.load_table(args.baseline, "--baseline")
    diff = gate.compare(run, baseline, args.tolerance_z, args.min_abs, run_behaviors, gate.load_behaviors(args.baseline, "--baseline"),
                   names=(f"run {args.run}", f"--baseline {args.baseline}"))
    print(diff.to_markdown(index=False, floatfmt=tuple(".4f" if c == "p" else ".2f" for c in diff.columns)))
    counts = diff["status"].value_counts()
    for status, meaning in [("new", "only in the run (warning: add them to the baseline)"),
                            ("skipped", "without an ASR on one side"),
                            ("missing", "in the baseline but not in the run"),
                            ("FAIL", (f"ASR rose beyond noise (z > {args.tolerance_z} or paired p < {sps.norm.sf(args.tolerance_z):.3g}, "
                                     f"rise > {args.min_abs} points)"))]:
        if counts.get(status):
            print(f"{status}: {counts[status]} row(s) {meaning}")
    verdict = gate.failed(diff)
    print("gate: FAILED" if verdict else "gate: passed")
    return gate.GateExit.FAILED if verdict else gate.GateExit.PASSED


if __name__ == "__main__":
    sys.exit(main())
