"""Re-judge a run's completions with another judge, without generating anything.

    python -m harness.rejudge results/runs/smollm2-aligned/advbench/prefill/none judge=keyword_gcg
    python -m harness.rejudge results/sweeps/default judge=rubric judge.model=gpt-4o    # every run folder below
    python -m harness.rejudge <folder> judge=harmbench_cls judge.model.path=/models/hb-cls

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

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import config, report
from harness.cli import exits_cleanly
from harness.errors import HarnessError, choices
from harness.judge import Judge
from harness.judge_usage import record_usage
from harness.progress import progress
from harness.records import RecordStore
from harness.run_folder import locked
from harness.types import Record

log = logging.getLogger("harness.rejudge")


def compose_judge(overrides: Sequence[str], built: dict[str, Judge] | None = None) -> Judge:
    """The judge of the harness config under these overrides (judge=name, judge.key=value, cache_dir=...);
    `built` reuses a judge already built from the same resolved settings (a classifier loads once)."""
    from omegaconf import OmegaConf

    from harness.cli import instantiate

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


def run_folders(paths: Sequence[Path]) -> list[Path]:
    folders: set[Path] = set()
    for path in paths:
        if path.is_file() and path.name == "records.jsonl":
            folders.add(path.parent)
        elif (path / "records.jsonl").is_file():
            folders.add(path)
        elif path.is_dir():
            folders.update(p.parent for p in path.rglob("records.jsonl"))
        else:
            raise HarnessError(f"{path}: no such run folder")
    if not folders:
        raise HarnessError(f"no records.jsonl in or under {', '.join(map(str, paths))}: give folders written by `python -m harness`")
    return sorted(folders)


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
            verdicts = judge.judge([(r.behavior, r.completion) for r in part])
            fresh = [r.model_copy(update={"verdict": v}) for r, v in zip(part, verdicts, strict=True)]
            store.append(fresh)  # written as it is produced: an interrupted re-judging keeps its progress
            latest.update({r.key: r for r in fresh})
            bar.update(len(part))
    return list(latest.values()), len(todo)


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.rejudge", description=__doc__.split("\n\n")[0],
                                     epilog="Overrides: judge=<name in conf/judge>, judge.<key>=<value>, cache_dir=<dir>")
    parser.add_argument("folders", nargs="+", type=Path, help="run folders (searched recursively for records.jsonl)")
    parser.add_argument("--all", action="store_true", help="re-judge every record, not only other judges' and failed ones")
    parser.add_argument("--wait", action="store_true", help="wait for a run folder another run or re-judging holds")
    parser.add_argument("--chunk", type=int, default=256, help="records judged (and appended) at a time")
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
        judge = compose_judge(cfg_overrides, judges)
        with locked(folder, wait=args.wait):  # no run and no other re-judging writes into it meanwhile
            before = judge.usage()
            records, count = rejudge_folder(folder, judge, everything=args.all, chunk=max(1, args.chunk))
            report.write(records, folder)
            record_usage(judge, folder, "rejudge", since=before)
        print(f"## {folder}\n\n{(folder / 'asr.md').read_text()}")  # the table with its notes
        print(f"{count} of {len(records)} records re-judged with {judge.id}; tables rewritten in {folder}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
