"""The command line: `harness` (= `python -m harness`) runs an experiment from the Hydra config, or one of the
analysis commands named first (`harness report RUN ...`); each command's argument parsing and exit handling
lives in its module here, the work in its room (`harness.analysis`, `harness.run`, `harness.view`).

User errors become one line, `error: ...`, and an exit code (`harness.errors.ExitCode`)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {  # name -> module with main(argv); `harness NAME --help` says more
    "report": "harness.cli.report",  # merge runs into ASR tables and plots
    "compare": "harness.cli.compare",  # paired comparison of two runs
    "gate": "harness.cli.gate",  # CI regression gate against a baseline
    "rejudge": "harness.cli.rejudge",  # new verdicts for stored completions
    "judge-eval": "harness.cli.judge_eval",  # a judge against human labels
    "labels": "harness.cli.labels",  # import human labels beside runs
    "view": "harness.cli.view",  # the results browser
    "kl": "harness.cli.kl",  # per-token KL between two models
}


def main() -> None:
    """`harness COMMAND ...` runs an analysis command; anything else is a run's Hydra overrides."""
    if len(sys.argv) > 1 and sys.argv[1].replace("_", "-") in COMMANDS:
        name = sys.argv[1].replace("_", "-")
        sys.argv = [f"harness {name}", *sys.argv[2:]]
        sys.exit(importlib.import_module(COMMANDS[name]).main(sys.argv[1:]) or 0)
    if len(sys.argv) > 1 and sys.argv[1] in ("--help", "-h"):
        print("harness [group=option ...] [key=value ...] [--multirun] [--wait]: a run (below: its config groups)\n"
              f"harness COMMAND ...: {', '.join(COMMANDS)} (harness COMMAND --help)\n")
    from harness.cli.run import cli

    cli()
