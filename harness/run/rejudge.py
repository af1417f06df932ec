"""Re-judge a run's completions with another judge, without generating anything.

    python -m harness rejudge results/runs/smollm2-aligned/advbench/prefill/none judge=keyword_gcg
    python -m harness rejudge results/sweeps/default judge=rubric judge.model=gpt-4o    # every run folder below
    python -m harness rejudge <folder> judge=harmbench_cls judge.model.path=/models/hb-cls

The judge is composed from the harness's Hydra config (`conf/judge/<name>.yaml`) with the
same `key=value` overrides `python -m harness` takes (`judge=...`, `judge.x=...`,
`cache_dir=...`; without `judge=` the default judge). Every record whose verdict came from
another judge, or failed, is judged again; `--all` re-judges every record (API and
classifier judges answer repeats from their cache, so this costs no calls). New verdicts
are appended to records.jsonl chunk by chunk (the latest line per completion wins, so an
interrupted re-judging keeps what it finished), then the ASR tables are rewritten and the
judge's calls/tokens/cost appended to judge_usage.jsonl.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from harness import config
from harness.errors import HarnessError, choices
from harness.judge.base import Judge
from harness.store.records import RecordStore
from harness.types import Record
from harness.util.progress import progress

log = logging.getLogger("harness.run.rejudge")


def compose_judge(overrides: Sequence[str], built: dict[str, Judge] | None = None) -> Judge:
    """The judge of the harness config under these overrides (judge=name, judge.key=value, cache_dir=...);
    `built` reuses a judge already built from the same resolved settings (a classifier loads once)."""
    from omegaconf import OmegaConf

    from harness.config import instantiate

    try:
        cfg = config.compose(overrides)
        settings = OmegaConf.to_yaml(cfg.judge, resolve=True)
    except HarnessError as exc:
        raise HarnessError(f"{exc} (after the run folders give Hydra overrides; judges: {choices(config.options('judge'))})") from None
    except Exception as exc:  # an interpolation the config cannot resolve here (OmegaConf's errors)
        raise HarnessError(f"judge settings {' '.join(overrides)}: {str(exc).splitlines()[0]}") from None
    if built is not None and settings in built:
        return built[settings]
    judge = instantiate(cfg.judge)
    if built is not None:
        built[settings] = judge
    return judge


def rejudge_folder(folder: Path, judge: Judge, everything: bool = False, chunk: int = 256) -> tuple[list[Record], int]:
    """Judge the folder's stale records again; append the new verdicts; return (all latest records, re-judged count)."""
    store = RecordStore(folder / "records.jsonl")
    latest = store.load()
    if not latest:
        raise HarnessError(f"{store.path}: holds no records")
    judge_id = judge.id
    todo = [r for r in latest.values() if everything or r.verdict.judge != judge_id or r.verdict.error]
    log.info("%s: %d records, %d to judge with %s", folder, len(latest), len(todo), judge_id)
    with progress(total=len(todo), desc=f"judging [{judge_id.split('@')[0]}]", unit="rec", disable=not todo) as bar:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            verdicts = judge.judge_records([(r.behavior, r.completion) for r in part])  # a failed request stays failed
            fresh = [r.model_copy(update={"verdict": v}) for r, v in zip(part, verdicts, strict=True)]
            store.append(fresh)  # written as it is produced: an interrupted re-judging keeps its progress
            latest.update({r.key: r for r in fresh})
            bar.update(len(part))
    return list(latest.values()), len(todo)
