"""`python -m harness report`: the command line of `harness.analysis.report` (arguments, exit codes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.analysis import report
from harness.analysis.outputs import output_folder
from harness.cli.exits import exits_cleanly


def make_parser() -> argparse.ArgumentParser:
    """The command's arguments (also what the docs test parses the guides' commands with)."""
    parser = argparse.ArgumentParser(prog="python -m harness report", description=report.__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="run folders (or records.jsonl files); searched recursively")
    parser.add_argument("--out", type=Path, default=Path("results/report"), help="where the merged tables and plots go")
    parser.add_argument("--calibration", type=Path, default=None,
                        help="judge calibration (from judge_eval --write-calibration) to add the judge-corrected ASR with")
    return parser


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    parser = make_parser()
    args = parser.parse_args(argv)
    files = report.record_files(args.folders)
    output_folder(args.out, args.folders)
    table = report.merge(files, args.out, args.calibration)
    summary = args.out / "asr_summary.md"
    print(summary.read_text() if summary.exists() else report.markdown(table))
    print(f"\n{len(files)} run folders merged; written to {args.out}/")


if __name__ == "__main__":
    sys.exit(main())
