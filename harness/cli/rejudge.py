"""`python -m harness rejudge`: the command line of `harness.run.rejudge` (arguments, exit codes)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.analysis import report
from harness.cli.exits import exits_cleanly
from harness.judge.base import Judge
from harness.judge.usage import record_usage
from harness.run import rejudge
from harness.store.folder import locked, run_folders


def make_parser() -> argparse.ArgumentParser:
    """The command's arguments (also what the docs test parses the guides' commands with)."""
    parser = argparse.ArgumentParser(prog="python -m harness rejudge", description=rejudge.__doc__.split("\n\n")[0],
                                     epilog="Overrides: judge=<name in conf/judge>, judge.<key>=<value>, cache_dir=<dir>")
    parser.add_argument("folders", nargs="+", type=Path, help="run folders (searched recursively for records.jsonl)")
    parser.add_argument("--all", action="store_true", help="re-judge every record, not only other judges' and failed ones")
    parser.add_argument("--wait", action="store_true", help="wait for a run folder another run or re-judging holds")
    parser.add_argument("--chunk", type=int, default=256, help="records judged (and appended) at a time")
    return parser


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args, overrides = parser.parse_known_args(argv)
    flags = [o for o in overrides if o.startswith("-")]
    if flags:
        parser.error(f"unrecognized arguments: {' '.join(flags)}")
    is_override = [("=" in str(p) and not p.exists()) for p in args.folders]  # a folder may have "=" in its name
    paths = [p for p, o in zip(args.folders, is_override, strict=True) if not o]
    overrides = [str(p) for p, o in zip(args.folders, is_override, strict=True) if o] + overrides
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    if not paths:
        parser.error("give at least one run folder")
    folders = run_folders(paths)
    own_folder = not any(o.split("=", 1)[0].lstrip("+~") in ("out_dir", "judge.labels") for o in overrides)
    judges: dict[str, Judge] = {}
    for folder in folders:
        # a judge that reads the run folder (human_over's labels default to ${out_dir}) reads this one
        quoted = str(folder).replace("\\", "\\\\").replace("'", "\\'")
        cfg_overrides = [*overrides, f"out_dir='{quoted}'"] if own_folder else list(overrides)
        judge = rejudge.compose_judge(cfg_overrides, judges)
        with locked(folder, wait=args.wait):  # no run and no other re-judging writes into it meanwhile
            before = judge.usage()
            records, count = rejudge.rejudge_folder(folder, judge, everything=args.all, chunk=max(1, args.chunk))
            report.write(records, folder)
            record_usage(judge, folder, "rejudge", since=before)
        print(f"## {folder}\n\n{(folder / 'asr.md').read_text()}")  # the table with its notes
        print(f"{count} of {len(records)} records re-judged with {judge.id}; tables rewritten in {folder}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
