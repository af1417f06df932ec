"""`python -m harness kl`: the command line of `harness.analysis.kl` (arguments, exit codes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.analysis import kl
from harness.cli.exits import exits_cleanly


def make_parser() -> argparse.ArgumentParser:
    """The command's arguments (also what the docs test parses the guides' commands with)."""
    parser = argparse.ArgumentParser(prog="python -m harness kl", description=kl.__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model card (conf/model), e.g. smollm2-aligned")
    parser.add_argument("--reference", required=True, help="model card of the base, e.g. smollm2")
    parser.add_argument("--answers-from", default=None, help="card whose answers are the harmful answers (default: --reference)")
    parser.add_argument("--benchmark", default="advbench")
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data_dir=../shared/data")
    return parser


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    from harness import config
    from harness.config import instantiate
    from harness.training.answers import sample_answers

    parser = make_parser()
    args = parser.parse_args(argv)

    def card(name: str):
        cfg = config.compose([f"model={name}", f"benchmark={args.benchmark}", "limit=null", *args.overrides])
        return cfg, instantiate(cfg.model)

    cfg, model = card(args.model)
    _, reference = card(args.reference)
    _, source = card(args.answers_from) if args.answers_from else (None, reference)
    bench = instantiate(cfg.benchmark)
    bench.sample, bench.limit = args.pairs * 2, None
    behaviors = bench.load()
    answers = sample_answers(source, behaviors)
    pairs = [(b, answers[b.id]) for b in behaviors if b.id in answers][: args.pairs]
    out = args.out or Path("results/kl") / f"{model.name}_vs_{reference.name}"
    stats = kl.analyse(model, reference, pairs, out, args.positions)
    print((out / "kl.md").read_text())
    print(f"{len(pairs)} pairs; written to {out}/  {stats}")


if __name__ == "__main__":
    sys.exit(main())
