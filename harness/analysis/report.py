"""Writing a run's (or several runs') tables and plots: asr.csv/.md, asr_by_category, behaviors.csv,
the worst case and the merged summary; the tables themselves are computed in `harness.analysis.tables`.

Attacks that try several configurations per behavior (attack=decoding) get worst-case rows in
`asr.csv` (strategy "worst case", per system-prompt mode and "any"), `asr_worst_case.csv/.md`
broken down by strategy, and `asr_vs_decoding.png`, ASR against each strategy's value.

Several runs (a sweep) merged: `asr_summary.csv/.md/.png` has one row per (model, defense,
attack, benchmark): its best single configuration's ASR and its worst case over all of the
attack's configurations (prefill lengths, decoding configurations; a one-configuration attack
has both equal to its ASR).

Multi-turn attacks (records with `params.turn`, attack=crescendo): `turns_to_break.csv/.md/.png`, the
share of behaviors still unbroken after t turns (Kaplan-Meier with its 95 % interval; harness.analysis.survival).

    python -m harness report results/runs/a results/runs/b --out results/merged
    python -m harness report results/sweeps/default --out results/merged   # every records.jsonl below
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.analysis import best_of_n, calibration, paired, plots, ppi, survival
from harness.analysis.tables import (
    BREAKDOWNS,
    SETUP,
    STRATEGY,
    asr_table,
    param_columns,
    summary_table,
    to_frame,
    worst_case,
)
from harness.errors import HarnessError
from harness.store import labels as human
from harness.store.labels import Label
from harness.store.records import RecordStore
from harness.training import contamination
from harness.types import Record

log = logging.getLogger(__name__)

JUDGE = "judge"  # the column that keeps the verdicts of several judges apart
BEHAVIORS = "behaviors.csv"  # per (set-up, configuration, behavior): samples, harmful, broken


RATES = {"asr", "asr_corrected", "asr_ppi", "refusal", "prefill_tokens", "best_config_asr", "worst_case_asr", "blocked", "seconds",
         "survival"}
FRACTIONS = {"mean_score"}  # scores and accuracies in [0, 1]: three decimals (GSM8K accuracy 0.04, not 0.0)


def rate(column: str) -> bool:
    """A percentage column: the fixed ones, and the ASR of each judge beside the deciding one (asr_<name>)."""
    return column in RATES or (column.startswith("asr_") and not column.endswith(("_lo", "_hi")))


def markdown(table: pd.DataFrame) -> str:
    """Rates with one decimal, each followed by its 95 % interval (from the `<rate>_lo/_hi` columns);
    fractions with three; parameter values as they are (top-p 0.05 stays 0.05); a parameter a row's
    attack does not have (k on a direct row of a merged table) is "-", not nan."""
    shown = table.copy()
    for column in list(shown.columns):
        lo, hi = f"{column}_lo", f"{column}_hi"
        if lo in shown.columns and hi in shown.columns:
            text = [f"{a:.1f}-{b:.1f}" if pd.notna(a) and pd.notna(b) else "" for a, b in zip(shown[lo], shown[hi], strict=True)]
            shown = shown.drop(columns=[lo, hi])
            shown.insert(shown.columns.get_loc(column) + 1, f"{column} 95% CI", text)
    for column in shown.columns:
        if not rate(column) and column not in FRACTIONS and shown[column].isna().any():
            shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{v:g}" if isinstance(v, float) else v)
    formats = tuple(".1f" if rate(c) else ".3f" if c in FRACTIONS else "g" for c in shown.columns)
    return shown.to_markdown(index=False, floatfmt=formats)


def footer(notes: Sequence[str]) -> str:
    return "".join(f"\n- {n}" for n in notes) + ("\n" if notes else "")


SAMPLING = "sampling.txt"  # how the run drew its behaviors (benchmark.limit), one line; merged reports repeat it


@dataclass
class Tables:
    """Everything a report shows, computed before anything is written (then `render` writes each file once)."""

    frame: pd.DataFrame  # one row per judged completion (tables.to_frame), what the plots draw from
    notes: list[str]  # the footer every Markdown table carries
    asr: pd.DataFrame  # asr.csv: ASR, intervals, corrected ASR, cost per set-up and configuration
    behaviors: pd.DataFrame  # behaviors.csv: per-behavior outcomes (paired tests, the gate)
    by_category: pd.DataFrame | None = None
    worst: pd.DataFrame | None = None  # worst case over the decoding attack's configurations, per strategy
    pairs: pd.DataFrame | None = None  # several set-ups: every pair, paired and Holm-corrected
    summary: pd.DataFrame | None = None  # several set-ups: best configuration and worst case per set-up
    survival: pd.DataFrame | None = None  # multi-turn attacks: behaviors unbroken after t turns (Kaplan-Meier)
    best_of_n: best_of_n.BestOfN | None = None  # attack=best_of_n: ASR against N, the power-law fit, cost


def compute(records: Sequence[Record], calibrations: Mapping[str, calibration.Calibration] | None = None,
            sampling: Sequence[str] = (), contaminated: Collection[tuple[str, str]] = (),
            labels: Mapping[str, Label] | None = None) -> Tables:
    """Every table of a report, as data. `labels`: the runs' human labels (record key -> latest label); those a
    random queue drew add the prediction-powered ASR (harness.analysis.ppi)."""
    frame = to_frame(records)
    if frame.empty:
        raise ValueError("no records to report")
    calibrations = calibrations or {}
    notes = [f"behaviors: {line}" for line in sampling]
    notes += keep_judges_apart(frame)
    notes += ["ASR cells: 95 % Wilson interval with one sample per behavior, a behavior-clustered bootstrap with several"]
    if contaminated:
        frame["contaminated"] = [pair in contaminated for pair in zip(frame["model"], frame["behavior"], strict=True)]
        notes.append(f"CONTAMINATED: {frame.loc[frame['contaminated'], 'behavior'].nunique()} behaviors are prompts the "
                     "model was trained on (count per row in `contaminated`); benchmark.exclude_trained=true drops them")
    notes += [c.too_weak() or c.note() for c in calibrations.values()]
    outcomes = paired.outcomes(frame)
    tables = Tables(frame=frame, notes=notes, asr=asr_table(frame, calibrations=calibrations), behaviors=outcomes)
    notes += ppi.add_ppi(tables.asr, frame, labels or {}, SETUP + param_columns(frame))
    if frame["category"].astype(bool).any():
        tables.by_category = asr_table(frame, extra=["category"], calibrations=calibrations)
    if f"param.{STRATEGY}" in frame.columns:
        worst = worst_case(frame, breakdowns=BREAKDOWNS, strategies_only=True)
        if not worst.empty:
            tables.worst = worst.rename(columns={c: c.removeprefix("param.") for c in worst.columns})
    tables.survival = survival.table(frame)
    tables.best_of_n = best_of_n.analyse(frame)
    if len(frame.groupby(SETUP)) > 1:  # several runs merged (a sweep)
        pairs = paired.grid(outcomes)
        tables.pairs = None if pairs.empty else pairs
        summary = summary_table(frame, tables.asr)
        tables.summary = None if summary.empty else summary
    return tables


def render(tables: Tables, out: Path) -> None:
    """Write each table (CSV and Markdown with the notes) and each plot into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    notes = footer(tables.notes)
    for name, table, shown in (("asr", tables.asr, markdown), ("asr_by_category", tables.by_category, markdown),
                               ("asr_worst_case", tables.worst, markdown), ("asr_paired", tables.pairs, paired.markdown),
                               ("asr_summary", tables.summary, markdown), ("turns_to_break", tables.survival, markdown)):
        if table is not None:
            table.to_csv(out / f"{name}.csv", index=False)
            (out / f"{name}.md").write_text(shown(table) + "\n" + notes)
    tables.behaviors.to_csv(out / BEHAVIORS, index=False)
    if tables.best_of_n is not None:
        bon = tables.best_of_n
        bon.curve.to_csv(out / "best_of_n.csv", index=False)
        bon.fit.to_csv(out / "best_of_n_fit.csv", index=False)
        (out / "best_of_n.md").write_text(best_of_n.markdown(bon) + "\n" + footer(tables.notes + bon.notes))
        plots.plot_best_of_n(bon.curve, out)
    plots.plot_sweeps(tables.frame, tables.asr, out)
    plots.plot_asr_vs_budget(tables.frame, out)
    if f"param.{STRATEGY}" in tables.frame.columns:
        plots.plot_decoding(tables.asr, out)
    if tables.summary is not None:
        plots.plot_summary(tables.summary, out)
    if tables.survival is not None:
        survival.plot(tables.survival, out)


def write(records: Sequence[Record], out: Path, calibration_file: Path | None = None,
          sampling: Sequence[str] = (), contaminated: Collection[tuple[str, str]] = (),
          labels: Mapping[str, Label] | None = None) -> pd.DataFrame:
    """Compute every table of the records, then write them and their plots into `out`; return the ASR table.

    `calibration_file`: a judge calibration to correct with (an error if it is for another judge);
    otherwise calibrations found for the records' judges in the calibration directory are used.
    `sampling` (how the run drew its behaviors) is stored in sampling.txt; without it, a run folder's own
    sampling.txt is kept (re-writing a run's tables: rejudge)."""
    judges = {r.verdict.judge for r in records}
    calibrations = calibration.for_judges(judges, calibration_file)
    given = list(sampling)
    if labels is None:  # a run folder's own labels (a run, a re-judging)
        labels = {key: changes[-1] for key, changes in human.read(out).items()} if (out / human.FILE).is_file() else {}
    tables = compute(records, calibrations, given or sampling_notes(out), set(contaminated) or contamination.load_run(out),
                     labels)
    render(tables, out)
    if given:
        (out / SAMPLING).write_text("".join(f"{line}\n" for line in given))
    return tables.asr


def sampling_notes(folder: Path) -> list[str]:
    """The run's notes on how it drew its behaviors (sampling.txt), one per line; none when absent."""
    path = folder / SAMPLING
    if not path.is_file():
        return []
    return [line for line in path.read_text(encoding="utf-8", errors="replace").split("\n") if line.strip()]


def keep_judges_apart(frame: pd.DataFrame) -> list[str]:
    """Records of several judges (a judge sweep merged, or runs re-judged apart) never share a row: the judge
    becomes a column of every table (as an attack parameter would); returns the table note saying so."""
    ids = sorted(set(frame["judge_id"]))
    if len(ids) < 2:
        return []
    column = "judge" if frame.groupby("judge")["judge_id"].nunique().max() == 1 else "judge_id"
    frame[f"param.{JUDGE}"] = frame[column]
    return [f"verdicts of {len(ids)} judges ({', '.join(ids)}): every row counts one judge's verdicts (column `{JUDGE}`)"]


def load_folders(folders: Sequence[Path]) -> list[Record]:
    """The records of run folders (or records.jsonl files), each completion once.

    The same file reached twice (a symlink, a folder and its records.jsonl) is read once; the same
    completion in two files (copies of one run) is counted once when the copies agree, and refused
    when they differ (two versions of one sample: which to count is the user's choice)."""
    records: dict[tuple[str, str], Record] = {}
    source: dict[tuple[str, str], Path] = {}
    seen: set[Path] = set()
    copies: set[tuple[Path, Path]] = set()
    for folder in folders:
        path = folder / "records.jsonl" if folder.is_dir() else folder
        if not path.exists():
            raise HarnessError(f"harness report: {path} does not exist (give run folders that hold records.jsonl)")
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        for key, record in RecordStore(path).load().items():
            slot = (key, record.verdict.judge)  # one sample judged by two judges (runs of a judge sweep): kept apart
            if slot in records:
                if records[slot] != record:
                    raise HarnessError(f"{source[slot]} and {path} hold different versions of the same sample ({key}): "
                                       "copies of one run that have diverged; give one of them")
                copies.add((source[slot], path))
                continue
            records[slot], source[slot] = record, path
    for first, second in sorted(copies):
        log.warning("%s repeats samples of %s (a copy of the run?): each sample counted once", second, first)
    return list(records.values())


def merge(files: Sequence[Path], out: Path, calibration_file: Path | None = None) -> pd.DataFrame:
    """Several runs' records files in one report: their records (each sample once), sampling notes, contamination
    and human labels together; return the ASR table."""
    folders = [f.parent for f in files]
    log.info("merging %d run folders", len(files))
    records = load_folders(files)
    if not records:
        raise HarnessError(f"harness report: no readable records in {', '.join(map(str, files))} "
                           f"(empty, or written by another harness version)")
    sampling = dict.fromkeys(line for f in folders for line in sampling_notes(f))
    contaminated = set().union(*(contamination.load_run(f) for f in folders))
    labels = {key: changes[-1] for f in folders for key, changes in human.read(f).items()}
    return write(records, out, calibration_file, sampling=list(sampling), contaminated=contaminated, labels=labels)


def record_files(paths: Sequence[Path]) -> list[Path]:
    """The records files named: a file as given, every records.jsonl at or below a folder; each real file once."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise HarnessError(f"harness report: no such folder or file: {', '.join(missing)}")
    files: dict[Path, Path] = {}
    for path in paths:
        for found in [path] if path.is_file() else sorted(path.rglob("records.jsonl")):
            files.setdefault(found.resolve(), found)
    if not files:
        raise HarnessError(f"harness report: no records.jsonl under {', '.join(map(str, paths))}")
    return sorted(files.values())
