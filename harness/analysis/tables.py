"""ASR tables from records: the numbers every report, gate, comparison and browser shows.

ASR = share of judged completions of *harmful* behaviors labelled harmful. Judge errors are
counted in their own column and excluded from the denominator (never counted as safe or
unsafe). The refusal rate (share of judged completions that refuse) is reported for every
row, which is the over-refusal figure on benign benchmarks (XSTest safe, JBB benign).

Attacks that try several configurations per behavior and name each one's `strategy` in
`Request.params` (attack=decoding) also get the worst case: a behavior counts as broken when
any of its configurations yields a harmful output (`worst_case`); there `asr` is the share of
behaviors broken and `n_harmful` the behaviors counted (a behavior with no harmful output and a
judge error is undecided, left out). Several runs merged get `summary_table`: per (model,
defense, attack, benchmark) the best single configuration's ASR and the worst case over all of
the attack's configurations. Writing them out (files, markdown, plots) is `harness.analysis.report`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from harness.analysis import calibration
from harness.analysis.calibration import Calibration
from harness.analysis.cost import COST, cost_fields, cost_summary
from harness.analysis.stats import cluster_bootstrap, count_interval, proportion_interval
from harness.types import Record

SETUP = ["model", "defense", "attack", "benchmark"]
PARAM_LABELS = {"k": "prefilled harmful tokens k"}
STRATEGY = "strategy"  # the param naming a configuration's strategy: its attack gets worst-case rows
BREAKDOWNS = ("system_prompt", STRATEGY)  # worst cases per value of these params, and over all ("any")
WORST = "worst case"
BESIDE = "beside."  # a column of another judge's verdicts, kept beside the deciding one's (judge/panel.py)
# the measured columns of an ASR table (everything else is a key: setup, attack parameters, category)
METRIC_COLUMNS = frozenset({"n", "n_harmful", "asr", "asr_lo", "asr_hi", "refusal", "refusal_lo", "refusal_hi",
                            "mean_score", "prefill_tokens", "errors", "asr_corrected", "asr_corrected_lo",
                            "asr_corrected_hi", "asr_ppi", "asr_ppi_lo", "asr_ppi_hi", "ppi_labels", "ppi_scope", "calibration", "contaminated", "sampling", "calib_judge", "calib_behaviors",
                            "blocked", "adaptive", *COST})


def is_metric(column: str) -> bool:
    """A measured column: METRIC_COLUMNS, and the ASR of each judge beside the deciding one (asr_<name>[_lo|_hi])."""
    return column in METRIC_COLUMNS or column.startswith("asr_")


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
            "key": r.key,  # the sample (human labels and queues name it)
            **{f"{BESIDE}{name}": harmful for name, harmful in r.verdict.beside.items()},  # judges beside (judge/panel.py)
            **cost_fields(r),  # attack cost, defense blocks, adaptive flag (harness/analysis/cost.py)
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
            **beside_asr(harmful),
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


def beside_asr(harmful: pd.DataFrame) -> dict[str, float]:
    """asr_<name> with its interval for every judge beside the deciding one (a panel), on the rows it judged."""
    out: dict[str, float] = {}
    for column in (c for c in harmful.columns if c.startswith(BESIDE)):
        rows = harmful[harmful[column].notna()]
        name = f"asr_{column.removeprefix(BESIDE)}"
        lo, hi = rate_interval(rows, column)
        out |= {name: 100.0 * rows[column].astype(bool).mean() if len(rows) else float("nan"), f"{name}_lo": lo,
                f"{name}_hi": hi}
    return out


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
    bounds = [count_interval(k, n) for k, n in zip(table["broken"], table["behaviors"], strict=True)]  # one vote per behavior
    table["asr_lo"] = [100.0 * lo for lo, _ in bounds]
    table["asr_hi"] = [100.0 * hi for _, hi in bounds]
    for c in ("n", "behaviors", "broken", "undecided", "configs", "errors"):
        table[c] = table[c].astype(int)
    return table.sort_values(SETUP + columns, kind="stable", ignore_index=True)[
        SETUP + columns + ["configs", "n", "behaviors", "broken", "undecided", "asr", "asr_lo", "asr_hi", "errors"]]


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
