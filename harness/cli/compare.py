"""`python -m harness compare`: the command line of `harness.analysis.compare` (arguments, exit codes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.analysis import compare, paired
from harness.analysis.outputs import output_folder
from harness.analysis.stats import behaviors_needed
from harness.cli.exits import exits_cleanly
from harness.errors import HarnessError


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


def make_parser() -> argparse.ArgumentParser:
    """The command's arguments (also what the docs test parses the guides' commands with)."""
    parser = argparse.ArgumentParser(prog="python -m harness compare", description=compare.__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="two run folders (or records.jsonl files): A then B")
    parser.add_argument("--out", type=Path, default=None, help="also write compare.csv and compare.md here")
    parser.add_argument("--power", nargs=2, type=float, metavar=("ASR_A", "ASR_B"),
                        help="instead: behaviors needed to detect ASR_A -> ASR_B (fractions)")
    parser.add_argument("--discordant", type=float, default=None, help="expected share of behaviors the two disagree on")
    parser.add_argument("--target-power", type=float, default=0.8)
    return parser


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    parser = make_parser()
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
    table = paired.compare_runs(compare.load_outcomes(a), compare.load_outcomes(b), names=(str(a), str(b)))
    text = f"A = {a}\nB = {b}\n\n{compare.markdown(table)}\n\n" + "\n".join(compare.verdicts(table)) + "\n"
    print(text)
    if args.out:
        table.to_csv(args.out / "compare.csv", index=False)
        (args.out / "compare.md").write_text(text)
    return None


if __name__ == "__main__":
    sys.exit(main())
