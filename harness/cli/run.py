"""python -m harness [group=option ...] [key=value ...] [--wait]: a run (or a Hydra sweep) from the config.

Groups: model, benchmark, attack, defense, judge, engine, experiment (see conf/ or --help).
Exit codes (`harness.errors.ExitCode`): 0 done; 2 a user error; 3 done, with judge errors;
4 done, with failed requests; 5 the run folder is busy; 130 interrupted.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from harness.cli.exits import exits_cleanly
from harness.config import CONF, check_finite
from harness.errors import ExitCode
from harness.run.compose import build_experiment

log = logging.getLogger("harness")
worst_exit = ExitCode.OK  # the worst ending of the run (or of a sweep's runs), the process's exit code


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")
@exits_cleanly
def main(cfg: DictConfig) -> float:
    from harness.analysis import report
    from harness.config import instantiate
    from harness.run.cluster import log_scheduler
    from harness.run.loop import run
    from harness.store.folder import locked
    from harness.training.distributed import is_main
    from harness.util.progress import quiet_library_bars

    quiet_library_bars()
    log_scheduler()
    if cfg.get("driver") is not None:  # an experiment that composes several runs (a run's numbers: build_experiment)
        check_finite(OmegaConf.to_container(cfg, resolve=False))
        table = instantiate(cfg.driver)()
        print(report.markdown(table))
        return float("nan")
    exp = build_experiment(cfg)
    with locked(exp.out_dir, wait=bool(cfg.get("wait", False))):
        outcome = run(exp)
    if not is_main():  # another process of `accelerate launch`: it helped train; the main process reports
        return float("nan")
    table_md = exp.out_dir / "asr.md"
    # the table with its notes (sampling, intervals, calibration); none when every request failed
    print(table_md.read_text() if not outcome.table.empty and table_md.is_file() else "(no completions to report)")
    log.info(
        "%d completions (%d generated, %d reused, %d re-judged) in %.0f s -> %s",
        len(outcome.records), outcome.generated, outcome.reused, outcome.rejudged, outcome.seconds, exp.out_dir,
    )
    ending(outcome)
    asr = outcome.table["asr"].max() if "asr" in outcome.table else float("nan")
    return float(asr)  # a sweeper (e.g. Optuna) can optimise the worst-case ASR


def ending(outcome) -> None:
    """The run's last lines say what is missing or undecided; the exit code follows (see ExitCode)."""
    global worst_exit
    errors = outcome.judge_errors
    if errors:
        log.error("%d of %d verdicts are judge errors (counted apart, never as safe or unsafe; first: %s). "
                  "Re-run the same command to re-judge them.",
                  len(errors), len(outcome.records), errors[0].verdict.error[:200])
        worst_exit = max(worst_exit, ExitCode.JUDGE_ERRORS)
    if outcome.failed is not None:
        log.error("%s", outcome.failed)
        worst_exit = max(worst_exit, ExitCode.FAILED_REQUESTS)


def cli() -> None:
    # `--wait` is ours, not Hydra's: wait for a busy run folder instead of stopping
    sys.argv = [("wait=true" if a == "--wait" else a) for a in sys.argv]
    main()
    sys.exit(worst_exit)
