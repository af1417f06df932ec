"""`python -m harness judge-eval`: the command line of `harness.analysis.judge_eval` (arguments, exit codes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.analysis import judge_eval
from harness.cli.exits import exits_cleanly


def make_parser() -> argparse.ArgumentParser:
    """The command's arguments (also what the docs test parses the guides' commands with)."""
    parser = argparse.ArgumentParser(prog="python -m harness judge-eval", description=judge_eval.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Extra key=value arguments are Hydra overrides, e.g. judge.model=gpt-4o")
    parser.add_argument("--judge", default="keyword", help="a config name in conf/judge (keyword, keyword_gcg, rubric, ...)")
    parser.add_argument("--labels", type=Path, default=None,
                        help=f"labelled CSV/JSONL (default: <data_dir>/{judge_eval.DEFAULT_LABELS}, data_dir from HARNESS_DATA_DIR)")
    parser.add_argument("--run", type=Path, nargs="+", default=None,
                        help="score against the human labels stored beside these run folders (instead of --labels)")
    parser.add_argument("--out", type=Path, default=Path("results/judge_eval"))
    parser.add_argument("--goal-column", default="goal")
    parser.add_argument("--prompt-column", default="prompt")
    parser.add_argument("--response-column", default="target_response")
    parser.add_argument("--label-column", default="human_majority")
    parser.add_argument("--context-column", default=judge_eval.DEFAULT_CONTEXT, help="optional; used when the file has it")
    parser.add_argument("--write-calibration", action="store_true",
                        help="store the judge's sensitivity/specificity for judge-corrected ASRs in the tables")
    parser.add_argument("--calibration-dir", type=Path, default=None,
                        help="where calibrations go (default $HARNESS_CALIBRATION_DIR or results/calibration)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
    return parser


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    parser = make_parser()
    judge_eval.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
