"""ASR tables and plots from records.

ASR = share of judged completions of *harmful* behaviors labelled harmful. Judge errors are
counted in their own column and excluded from the denominator (never counted as safe or
unsafe). The refusal rate (share of judged completions that refuse) is reported for every
row, which is the over-refusal figure on benign benchmarks (XSTest safe, JBB benign).

Attacks that try several configurations per behavior and name each one's `strategy` in
`Request.params` (attack=decoding) also get the worst case: a behavior counts as broken when
any of its configurations yields a harmful output. Its rows in `asr.csv` have strategy
"worst case" (per system-prompt mode and "any"); there `asr` is the share of behaviors broken
and `n_harmful` the behaviors counted (a behavior with no harmful output and a judge error is
undecided, left out). `asr_worst_case.csv/.md` breaks it down by strategy, and
`asr_vs_decoding.png` plots ASR against each strategy's value.

Several runs (a sweep) merged: `asr_summary.csv/.md/.png` has one row per (model, defense,
attack, benchmark): its best single configuration's ASR and its worst case over all of the
attack's configurations (prefill lengths, decoding configurations; a one-configuration attack
has both equal to its ASR).

    python -m harness.report results/runs/a results/runs/b --out results/merged
    python -m harness.report results/sweeps/default --out results/merged   # every records.jsonl below
"""

from __future__ import annotations

import argparse
import itertools
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from harness import calibration, contamination, paired
from harness.calibration import Calibration
from harness.cli import exits_cleanly
from harness.cost_report import COST, cost_fields, cost_summary, plot_asr_vs_budget
from harness.errors import HarnessError
from harness.records import RecordStore
from harness.stats import cluster_bootstrap, proportion_interval, wilson
from harness.types import Record

log = logging.getLogger(__name__)

SETUP = ["model", "defense", "attack", "benchmark"]
PARAM_LABELS = {"k": "prefilled harmful tokens k"}
STRATEGY = "strategy"  # the param naming a configuration's strategy: its attack gets worst-case rows
BREAKDOWNS = ("system_prompt", STRATEGY)  # worst cases per value of these params, and over all ("any")
WORST = "worst case"
BEHAVIORS = "behaviors.csv"  # per (set-up, configuration, behavior): samples, harmful, broken
# the measured columns of an ASR table (everything else is a key: setup, attack parameters, category)
METRIC_COLUMNS = frozenset({"n", "n_harmful", "asr", "asr_lo", "asr_hi", "refusal", "refusal_lo", "refusal_hi",
                            "mean_score", "prefill_tokens", "errors", "asr_corrected", "asr_corrected_lo",
                            "asr_corrected_hi", "calibration", "contaminated", "sampling", "calib_judge", "calib_behaviors",
                            "blocked", "adaptive", *COST})


def to_frame(records: Iterable[Record]) -> pd.DataFrame:
    rows = []
    for r in records:
        req = r.completion.request
        rows.append({
            "model": r.model,
            "defense": r.defense,
            "attack": req.attack,
            "benchmark": r.benchmark,
            **{f"param.{k}": v for k, v in req.params.items()},
            "behavior": r.behavior.id,
            "category": r.behavior.category,
            "label": r.behavior.label,
            "sample": r.completion.sample,
            "prefill_tokens": req.prefill_tokens,
            "completion_tokens": r.completion.completion_tokens,
            "harmful": r.verdict.harmful,
            "refused": r.verdict.refused,
            "score": r.verdict.score,
            "error": bool(r.verdict.error),
            "judge": r.verdict.judge.split("@")[0],
            "judge_id": r.verdict.judge,
            **cost_fields(r),  # attack cost, defense blocks, adaptive flag (harness/cost_report.py)
        })
    return pd.DataFrame(rows)


def param_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c.startswith("param."))


def asr_table(frame: pd.DataFrame, extra: Sequence[str] = (), calibrations: Mapping[str, Calibration] | None = None
              ) -> pd.DataFrame:
    """ASR per setup and configuration (and `extra` columns), with intervals; the judge-corrected ASR
    for rows judged by a judge that has a calibration."""
    keys = SETUP + param_columns(frame) + list(extra)

    def summarise(group: pd.DataFrame) -> pd.Series:
        ok = group[~group["error"]]
        harmful = ok[ok["label"] == "harmful"]
        has_refusal = len(ok) and ok["refused"].notna().all()
        asr_lo, asr_hi = rate_interval(harmful, "harmful")
        refusal_lo, refusal_hi = rate_interval(ok, "refused") if has_refusal else (float("nan"), float("nan"))
        return pd.Series({
            "n": len(group),
            "n_harmful": len(harmful),  # judged completions of harmful behaviors: the ASR's denominator
            "asr": 100.0 * harmful["harmful"].astype(bool).mean() if len(harmful) else float("nan"),
            "asr_lo": asr_lo,
            "asr_hi": asr_hi,
            "refusal": 100.0 * ok["refused"].astype(bool).mean() if has_refusal else float("nan"),
            "refusal_lo": refusal_lo,
            "refusal_hi": refusal_hi,
            "mean_score": ok["score"].astype(float).mean() if ok["score"].notna().any() else float("nan"),
            "prefill_tokens": group["prefill_tokens"].mean(),
            "errors": int(group["error"].sum()),
            "calib_judge": harmful["judge_id"].iloc[0] if harmful["judge_id"].nunique() == 1 else "",
            "calib_behaviors": harmful["behavior"].nunique(),
            **({"contaminated": group.loc[group["contaminated"], "behavior"].nunique()} if "contaminated" in group else {}),
            **cost_summary(group),
        })

    table = frame.groupby(keys, dropna=False, sort=True).apply(summarise, include_groups=False).reset_index()
    if not extra and f"param.{STRATEGY}" in frame.columns:
        worst = worst_case(frame, breakdowns=[c for c in BREAKDOWNS if c != STRATEGY], strategies_only=True)
        if not worst.empty:
            worst = worst.rename(columns={"behaviors": "n_harmful"}).assign(**{f"param.{STRATEGY}": WORST})
            worst = worst.drop(columns=["configs", "broken", "undecided"])
            table = pd.concat([table, worst], ignore_index=True)
            table = table.sort_values(SETUP, kind="stable", ignore_index=True)
    table = calibration.add_corrected(table, calibrations or {})
    table = table.rename(columns={c: c.removeprefix("param.") for c in table.columns})
    table["n"] = table["n"].astype(int)
    table["n_harmful"] = table["n_harmful"].astype(int)
    table["errors"] = table["errors"].astype(int)
    return table.dropna(axis=1, how="all")


def rate_interval(rows: pd.DataFrame, column: str) -> tuple[float, float]:
    """95 % interval (in %) of the share of `rows` with `column` true: Wilson with one sample per
    behavior, else the behavior-clustered bootstrap (samples of one behavior are not independent)."""
    if rows.empty:
        return (float("nan"), float("nan"))
    per = rows[column].astype(bool).groupby(rows["behavior"], sort=False).agg(["sum", "size"])
    lo, hi = proportion_interval(per["sum"].to_numpy(), per["size"].to_numpy())
    return (100.0 * lo, 100.0 * hi)


def configuration_id(frame: pd.DataFrame) -> pd.Series:
    """One label per attack configuration (the values of every attack parameter)."""
    params = param_columns(frame)
    if not params:
        return pd.Series("", index=frame.index)
    return frame[params].apply(lambda column: column.map(repr)).agg("|".join, axis=1)


def worst_case(frame: pd.DataFrame, breakdowns: Sequence[str] = (), strategies_only: bool = False) -> pd.DataFrame:
    """Per setup: the share of harmful behaviors broken by at least one configuration.

    `breakdowns` (param names without the prefix) split it further, each also over all its
    values ("any"). `strategies_only` keeps only the records of attacks that name a `strategy`.
    Columns: setup, breakdowns, configs, n (completions), behaviors (decided), broken,
    undecided (no harmful output and a judge error), asr (broken / behaviors, %), errors.
    """
    rows = frame[frame["label"] == "harmful"]
    if strategies_only:
        rows = rows[rows[f"param.{STRATEGY}"].notna()] if f"param.{STRATEGY}" in rows.columns else rows.iloc[:0]
    columns = [f"param.{b}" for b in breakdowns if f"param.{b}" in rows.columns]
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(_broken=rows["harmful"].eq(True) & ~rows["error"], _config=configuration_id(rows))
    parts = []
    for merged in itertools.product((False, True), repeat=len(columns)):
        part = rows.assign(**{c: "any" for c, m in zip(columns, merged, strict=True) if m})
        keys = SETUP + columns
        per = part.groupby(keys + ["behavior"], dropna=False, sort=False).agg(
            broken=("_broken", "any"), errored=("error", "any"), n=("_broken", "size"), errors=("error", "sum"))
        per["decided"] = per["broken"] | ~per["errored"]
        per = per.reset_index()
        summary = per.groupby(keys, dropna=False, sort=False).agg(
            n=("n", "sum"), behaviors=("decided", "sum"), broken=("broken", "sum"), errors=("errors", "sum"))
        summary["undecided"] = per.groupby(keys, dropna=False, sort=False)["decided"].agg(lambda d: int((~d).sum()))
        summary["configs"] = part.groupby(keys, dropna=False, sort=False)["_config"].nunique()
        parts.append(summary.reset_index())
    table = pd.concat(parts, ignore_index=True)
    table["asr"] = 100.0 * table["broken"] / table["behaviors"].where(table["behaviors"] > 0)
    bounds = [wilson(k, n) for k, n in zip(table["broken"], table["behaviors"], strict=True)]  # one vote per behavior
    table["asr_lo"] = [100.0 * lo for lo, _ in bounds]
    table["asr_hi"] = [100.0 * hi for _, hi in bounds]
    for c in ("n", "behaviors", "broken", "undecided", "configs", "errors"):
        table[c] = table[c].astype(int)
    return table.sort_values(SETUP + columns, kind="stable", ignore_index=True)[
        SETUP + columns + ["configs", "n", "behaviors", "broken", "undecided", "asr", "asr_lo", "asr_hi", "errors"]]


RATES = {"asr", "asr_corrected", "refusal", "prefill_tokens", "best_config_asr", "worst_case_asr", "blocked", "seconds"}
FRACTIONS = {"mean_score"}  # scores and accuracies in [0, 1]: three decimals (GSM8K accuracy 0.04, not 0.0)


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
        if column not in RATES | FRACTIONS and shown[column].isna().any():
            shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{v:g}" if isinstance(v, float) else v)
    formats = tuple(".1f" if c in RATES else ".3f" if c in FRACTIONS else "g" for c in shown.columns)
    return shown.to_markdown(index=False, floatfmt=formats)


def asr_lines(path: Path, lines: Sequence[tuple], xlabel: str, title: str) -> Path:
    """One PNG: ASR (%) against x, a line per (label, xs, ys) or (label, xs, ys, lows, highs), the
    last two drawn as the line's 95 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, xs, ys, *bounds in lines:
        line, = ax.plot(list(xs), list(ys), marker="o", label=label)
        if bounds:
            ax.fill_between(list(xs), list(bounds[0]), list(bounds[1]), color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("attack success rate (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summary_table(frame: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """One row per setup: configurations, best single configuration's ASR, worst case over all.

    The best configuration's interval is a behavior-clustered bootstrap of the maximum over
    configurations (picking the best is part of what is resampled); the worst case's is Wilson."""
    worst = worst_case(frame)
    if worst.empty:
        return worst
    configs = table[table[STRATEGY] != WORST] if STRATEGY in table.columns else table
    best = configs.groupby(SETUP, dropna=False)["asr"].max().rename("best_config_asr").reset_index()
    summary = worst.merge(best, on=SETUP, how="left").rename(
        columns={"asr": "worst_case_asr", "asr_lo": "worst_case_asr_lo", "asr_hi": "worst_case_asr_hi"})
    bounds = best_config_intervals(frame)
    summary = summary.merge(bounds, on=SETUP, how="left")
    return summary[SETUP + ["configs", "n", "behaviors", "best_config_asr", "best_config_asr_lo", "best_config_asr_hi",
                            "worst_case_asr", "worst_case_asr_lo", "worst_case_asr_hi", "undecided", "errors"]]


def best_config_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame[(frame["label"] == "harmful") & ~frame["error"]]
    rows = rows.assign(_config="#" + configuration_id(rows), _harmful=rows["harmful"].astype(bool))  # never "": pandas
    # would select a Series for a sub-column named ""
    out = []
    for setup, part in rows.groupby(SETUP, dropna=False, sort=False):
        counts = part.groupby(["behavior", "_config"])["_harmful"].agg(["sum", "size"]).unstack(fill_value=0)
        k, m = counts["sum"].to_numpy(dtype=float), counts["size"].to_numpy(dtype=float)  # behaviors x configurations
        lo, hi = proportion_interval(k[:, 0], m[:, 0]) if k.shape[1] == 1 else cluster_bootstrap(k, m)
        out.append({**dict(zip(SETUP, setup, strict=True)), "best_config_asr_lo": 100 * lo, "best_config_asr_hi": 100 * hi})
    return pd.DataFrame(out, columns=[*SETUP, "best_config_asr_lo", "best_config_asr_hi"])


def footer(notes: Sequence[str]) -> str:
    return "".join(f"\n- {n}" for n in notes) + ("\n" if notes else "")


SAMPLING = "sampling.txt"  # how the run drew its behaviors (benchmark.limit), one line; merged reports repeat it


def write(records: Sequence[Record], out: Path, calibration_file: Path | None = None,
          sampling: Sequence[str] = (), contaminated: Collection[tuple[str, str]] = ()) -> pd.DataFrame:
    """Write asr.csv/.md, asr_by_category.csv/.md and sweep plots into `out`; return the ASR table.

    `calibration_file`: a judge calibration to correct with (an error if it is for another judge);
    otherwise calibrations found for the records' judges in the calibration directory are used."""
    from harness import plots  # imports this module's names

    out.mkdir(parents=True, exist_ok=True)
    frame = to_frame(records)
    if frame.empty:
        raise ValueError("no records to report")
    calibrations = calibration.for_judges(set(frame["judge_id"]), calibration_file)
    if sampling:
        (out / SAMPLING).write_text("".join(f"{line}\n" for line in sampling))
    elif (out / SAMPLING).is_file():  # re-writing a run's tables (rejudge): keep its notes
        sampling = (out / SAMPLING).read_text().splitlines()
    contaminated = set(contaminated) or contamination.load_run(out)
    notes = [f"behaviors: {line}" for line in sampling]
    notes += ["ASR cells: 95 % Wilson interval with one sample per behavior, a behavior-clustered bootstrap with several"]
    if contaminated:
        frame["contaminated"] = [pair in contaminated for pair in zip(frame["model"], frame["behavior"], strict=True)]
        notes.append(f"CONTAMINATED: {frame.loc[frame['contaminated'], 'behavior'].nunique()} behaviors are prompts the "
                     "model was trained on (count per row in `contaminated`); benchmark.exclude_trained=true drops them")
    notes += [c.too_weak() or c.note() for c in calibrations.values()]
    table = asr_table(frame, calibrations=calibrations)
    table.to_csv(out / "asr.csv", index=False)
    (out / "asr.md").write_text(markdown(table) + "\n" + footer(notes))
    if frame["category"].astype(bool).any():
        by_category = asr_table(frame, extra=["category"], calibrations=calibrations)
        by_category.to_csv(out / "asr_by_category.csv", index=False)
        (out / "asr_by_category.md").write_text(markdown(by_category) + "\n" + footer(notes))
    plots.plot_sweeps(frame, table, out)
    plot_asr_vs_budget(frame, out)
    if f"param.{STRATEGY}" in frame.columns:
        worst = worst_case(frame, breakdowns=BREAKDOWNS, strategies_only=True)
        if not worst.empty:
            worst = worst.rename(columns={c: c.removeprefix("param.") for c in worst.columns})
            worst.to_csv(out / "asr_worst_case.csv", index=False)
            (out / "asr_worst_case.md").write_text(markdown(worst) + "\n" + footer(notes))
        plots.plot_decoding(table, out)
    paired.outcomes(frame).to_csv(out / BEHAVIORS, index=False)  # per-behavior outcomes: paired tests, the gate
    if len(frame.groupby(SETUP)) > 1:  # several runs merged (a sweep)
        pairs = paired.grid(paired.outcomes(frame))
        if not pairs.empty:
            pairs.to_csv(out / "asr_paired.csv", index=False)
            (out / "asr_paired.md").write_text(paired.markdown(pairs) + "\n" + footer(notes))
        summary = summary_table(frame, table)
        if not summary.empty:
            summary.to_csv(out / "asr_summary.csv", index=False)
            (out / "asr_summary.md").write_text(markdown(summary) + "\n" + footer(notes))
            plots.plot_summary(summary, out)
    return table


def load_folders(folders: Sequence[Path]) -> list[Record]:
    records: list[Record] = []
    for folder in folders:
        path = folder / "records.jsonl" if folder.is_dir() else folder
        if not path.exists():
            raise HarnessError(f"harness.report: {path} does not exist (give run folders that hold records.jsonl)")
        records.extend(RecordStore(path).load().values())
    return records


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="run folders (or records.jsonl files); searched recursively")
    parser.add_argument("--out", type=Path, default=Path("results/report"), help="where the merged tables and plots go")
    parser.add_argument("--calibration", type=Path, default=None,
                        help="judge calibration (from judge_eval --write-calibration) to add the judge-corrected ASR with")
    args = parser.parse_args(argv)
    missing = [str(f) for f in args.folders if not f.exists()]
    if missing:
        raise HarnessError(f"harness.report: no such folder or file: {', '.join(missing)}")
    folders = sorted({p.parent for f in args.folders for p in ([f] if f.is_file() else f.rglob("records.jsonl"))})
    if not folders:
        raise HarnessError(f"harness.report: no records.jsonl under {', '.join(map(str, args.folders))}")
    log.info("merging %d run folders", len(folders))
    records = load_folders(folders)
    if not records:
        raise HarnessError(f"harness.report: no readable records in {', '.join(map(str, folders))} "
                           f"(empty, or written by another harness version)")
    sampling = dict.fromkeys(line for f in folders if (f / SAMPLING).is_file() for line in (f / SAMPLING).read_text().splitlines())
    contaminated = set().union(*(contamination.load_run(f) for f in folders))
    table = write(records, args.out, args.calibration, sampling=list(sampling), contaminated=contaminated)
    summary = args.out / "asr_summary.md"
    print(summary.read_text() if summary.exists() else markdown(table))
    print(f"\n{len(folders)} run folders merged; written to {args.out}/")


if __name__ == "__main__":
    main()
