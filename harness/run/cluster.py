"""Where a run executes: the SLURM job it belongs to (if any), logged at start so each run
folder's harness.log names the job whose logs sit in <sweep dir>/.submitit/<job id>/."""

from __future__ import annotations

import logging
import os

log = logging.getLogger("harness")

SLURM_VARIABLES = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_PARTITION", "SLURMD_NODENAME")


def slurm_job() -> dict[str, str]:
    """The SLURM variables of the current job; empty outside SLURM."""
    return {k: os.environ[k] for k in SLURM_VARIABLES if k in os.environ}


def log_scheduler() -> None:
    job = slurm_job()
    if job:
        log.info("SLURM job %s (array %s, task %s) on node %s, partition %s", job.get("SLURM_JOB_ID"),
                 job.get("SLURM_ARRAY_JOB_ID", "-"), job.get("SLURM_ARRAY_TASK_ID", "-"),
                 job.get("SLURMD_NODENAME", "?"), job.get("SLURM_JOB_PARTITION", "?"))
