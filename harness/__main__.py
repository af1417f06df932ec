"""python -m harness [group=option ...] [key=value ...]

Groups: model, benchmark, attack, defense, judge, engine, experiment (see conf/ or --help).
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from harness.cli import build_experiment, exits_cleanly
from harness.config import CONF

log = logging.getLogger("harness")


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")
@exits_cleanly
def main(cfg: DictConfig) -> float:
    from harness import report
    from harness.cli import instantiate
    from harness.run import run

    if cfg.get("driver") is not None:  # an experiment that composes several runs
        table = instantiate(cfg.driver)()
        print(report.markdown(table))
        return float("nan")
    exp = build_experiment(cfg)
    outcome = run(exp)
    print(report.markdown(outcome.table))
    log.info(
        "%d completions (%d generated, %d reused, %d re-judged) in %.0f s -> %s",
        len(outcome.records), outcome.generated, outcome.reused, outcome.rejudged, outcome.seconds, exp.out_dir,
    )
    asr = outcome.table["asr"].max() if "asr" in outcome.table else float("nan")
    return float(asr)  # a sweeper (e.g. Optuna) can optimise the worst-case ASR


if __name__ == "__main__":
    main()
