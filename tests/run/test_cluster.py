"""A run inside a SLURM job names the job in its log; outside SLURM it says nothing about it."""

from __future__ import annotations

import logging

from harness.run.cluster import log_scheduler, slurm_job


def test_slurm_job_is_logged(monkeypatch, caplog):
    for key, value in {"SLURM_JOB_ID": "41", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "1",
                       "SLURMD_NODENAME": "gpu07", "SLURM_JOB_PARTITION": "gpu"}.items():
        monkeypatch.setenv(key, value)
    with caplog.at_level(logging.INFO, logger="harness"):
        log_scheduler()
    assert "SLURM job 41 (array 40, task 1) on node gpu07, partition gpu" in caplog.text


def test_outside_slurm_nothing_is_logged(monkeypatch, caplog):
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURMD_NODENAME", "SLURM_JOB_PARTITION"):
        monkeypatch.delenv(key, raising=False)
    with caplog.at_level(logging.INFO, logger="harness"):
        log_scheduler()
    assert slurm_job() == {} and "SLURM" not in caplog.text
