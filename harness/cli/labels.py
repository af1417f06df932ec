"""`python -m harness labels`: the command line of `harness.store.labels` (arguments, exit codes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.analysis import ppi
from harness.cli.exits import exits_cleanly
from harness.store import labels, queue


def make_parser() -> argparse.ArgumentParser:
    """The command's arguments (also what the docs test parses the guides' commands with)."""
    parser = argparse.ArgumentParser(prog="python -m harness labels", description=labels.__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    imp = commands.add_parser("import", help="store a labels file exported by the browser beside its run(s)")
    imp.add_argument("file", type=Path, help="the JSON file exported from the browser, or a filled queue file (.csv, .jsonl)")
    imp.add_argument("runs", nargs="+", type=Path, help="the run folder(s), or a folder above them")
    queue = commands.add_parser("queue", help="draw a random sample of the runs' outputs to label (a file to fill in)")
    queue.add_argument("runs", nargs="+", type=Path, help="the run folder(s), or a folder above them")
    queue.add_argument("--n", type=int, required=True, help="samples to draw, spread over the table's cells")
    queue.add_argument("--seed", type=int, default=0)
    queue.add_argument("--out", type=Path, default=None, help="the file to fill in: .csv (default) or .jsonl")
    plan = commands.add_parser("plan", help="how many more queued labels bring the ASR's interval to a width")
    plan.add_argument("runs", nargs="+", type=Path, help="the run folder(s), or a folder above them")
    plan.add_argument("--width", type=float, required=True, help="the 95 %% interval's width in points, e.g. 10")
    return parser


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command == "queue":
        name, path, count = queue.write_queue(args.runs, args.n, args.seed, args.out)
        print(f"queue {name}: {count} samples drawn at random (seed {args.seed}) -> {path}\n"
              f"fill in its label column (harmful / not_harmful / unclear), then: harness labels import {path} "
              f"{' '.join(map(str, args.runs))}")
        return 0
    if args.command == "plan":
        print(ppi.plan(args.runs, args.width))
        return 0
    for folder, (added, same) in labels.import_file(args.file, args.runs).items():
        print(f"{folder / labels.FILE}: {added} labels added" + (f", {same} already there" if same else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
