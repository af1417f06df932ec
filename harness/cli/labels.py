"""`python -m harness labels`: the command line of `harness.store.labels` (arguments, exit codes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.cli.exits import exits_cleanly
from harness.store import labels


def make_parser() -> argparse.ArgumentParser:
    """The command's arguments (also what the docs test parses the guides' commands with)."""
    parser = argparse.ArgumentParser(prog="python -m harness labels", description=labels.__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    imp = commands.add_parser("import", help="store a labels file exported by the browser beside its run(s)")
    imp.add_argument("file", type=Path, help="the JSON file exported from the browser")
    imp.add_argument("runs", nargs="+", type=Path, help="the run folder(s), or a folder above them")
    return parser


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    for folder, (added, same) in labels.import_file(args.file, args.runs).items():
        print(f"{folder / labels.FILE}: {added} labels added" + (f", {same} already there" if same else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
