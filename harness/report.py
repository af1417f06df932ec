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
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from harness.cost_report import cost_fields, cost_summary, plot_asr_vs_budget
from harness.records import RecordStore
from harness.types import Record

log = logging.getLogger(__name__)

SETUP = ["model", "defense", "attack", "benchmark"]
PARAM_LABELS = {"k": "prefilled harmful tokens k"}
STRATEGY = "strategy"  # the param naming a configuration's strategy: its attack gets worst-case rows
BREAKDOWNS = ("system_prompt", STRATEGY)  # worst cases per value of these params, and over all ("any")
WORST = "worst case"


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
            **cost_fields(r),  # attack cost, defense blocks, adaptive flag (harness/cost_report.py)
        })
    return pd.DataFrame(rows)


def param_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c.startswith("param."))


def asr_table(frame: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    keys = SETUP + param_columns(frame) + list(extra)

    def summarise(group: pd.DataFrame) -> pd.Series:
        ok = group[~group["error"]]
        harmful = ok[ok["label"] == "harmful"]
        return pd.Series({
            "n": len(group),
            "n_harmful": len(harmful),  # judged completions of harmful behaviors: the ASR's denominator
            "asr": 100.0 * harmful["harmful"].astype(bool).mean() if len(harmful) else float("nan"),
            "refusal": 100.0 * ok["refused"].astype(bool).mean() if len(ok) and ok["refused"].notna().all() else float("nan"),
            "mean_score": ok["score"].astype(float).mean() if ok["score"].notna().any() else float("nan"),
            "prefill_tokens": group["prefill_tokens"].mean(),
            "errors": int(group["error"].sum()),
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
    table = table.rename(columns={c: c.removeprefix("param.") for c in table.columns})
    table["n"] = table["n"].astype(int)
    table["n_harmful"] = table["n_harmful"].astype(int)
    table["errors"] = table["errors"].astype(int)
    return table.dropna(axis=1, how="all")


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
    for c in ("n", "behaviors", "broken", "undecided", "configs", "errors"):
        table[c] = table[c].astype(int)
    return table.sort_values(SETUP + columns, kind="stable", ignore_index=True)[
        SETUP + columns + ["configs", "n", "behaviors", "broken", "undecided", "asr", "errors"]]


RATES = {"asr", "refusal", "mean_score", "prefill_tokens", "best_config_asr", "worst_case_asr", "blocked", "seconds"}


def markdown(table: pd.DataFrame) -> str:
    """Rates with one decimal; parameter values as they are (top-p 0.05 stays 0.05)."""
    return table.to_markdown(index=False, floatfmt=tuple(".1f" if c in RATES else "g" for c in table.columns))


def plot_sweeps(frame: pd.DataFrame, table: pd.DataFrame, out: Path) -> list[Path]:
    """One PNG per numeric attack parameter that takes several values (ASR against it).

    In a merged sweep only the rows of attacks that have the parameter are plotted; attacks
    that name a `strategy` per configuration are plotted by `plot_decoding` instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for column in param_columns(frame):
        name = column.removeprefix("param.")
        rows = table[table[name].notna()]
        if STRATEGY in rows.columns:
            rows = rows[rows[STRATEGY].isna()]
        values = pd.to_numeric(rows[name], errors="coerce")
        if rows.empty or values.isna().any() or values.nunique() < 2:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        lines = [c for c in SETUP if rows[c].nunique() > 1] or ["model"]
        for label, part in rows.groupby([rows[c] for c in lines]):
            part = part.sort_values(name)
            ax.plot(part[name], part["asr"], marker="o", label=" / ".join(map(str, label if isinstance(label, tuple) else (label,))))
        ax.set_xlabel(PARAM_LABELS.get(name, name))
        ax.set_ylabel("attack success rate (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{', '.join(sorted(rows['attack'].unique()))} on {', '.join(sorted(rows['benchmark'].unique()))}")
        fig.tight_layout()
        path = out / f"asr_vs_{name}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def asr_lines(path: Path, lines: Sequence[tuple[str, Sequence, Sequence]], xlabel: str, title: str) -> Path:
    """One PNG: ASR (%) against x, a line per (label, xs, ys)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, xs, ys in lines:
        ax.plot(list(xs), list(ys), marker="o", label=label)
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


def plot_decoding(table: pd.DataFrame, out: Path) -> Path | None:
    """ASR against each sampled strategy's value (one panel each), a line per system-prompt mode
    (and per setup that varies); greedy and the worst case as horizontal lines."""
    if STRATEGY not in table.columns:
        return None
    rows = table[table[STRATEGY].notna()]
    panels = [s for s in rows[STRATEGY].unique() if s not in ("greedy", WORST)]
    if rows.empty or not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "system_prompt" in rows.columns:  # the overall worst case ("any") has no line of its own
        rows = rows[rows["system_prompt"] != "any"]
    lines = [c for c in SETUP if rows[c].nunique() > 1] + [c for c in ("system_prompt",) if c in rows.columns]
    lines = lines or ["model"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, strategy in zip(axes[0], panels, strict=True):
        for i, (label, part) in enumerate(rows.groupby([rows[c] for c in lines], dropna=False)):
            name = " / ".join(map(str, label if isinstance(label, tuple) else (label,)))
            color = f"C{i}"
            sweep = part[part[STRATEGY] == strategy].sort_values("value")
            ax.plot(sweep["value"], sweep["asr"], marker="o", ms=3, color=color, label=name)
            for kind, style in (("greedy", "--"), (WORST, ":")):
                level = part.loc[part[STRATEGY] == kind, "asr"]
                if len(level):
                    ax.axhline(level.iloc[0], color=color, ls=style, lw=1)
        ax.set_xlabel(strategy.replace("_", "-"))
        if strategy == "top_k":
            ax.set_xscale("log")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("attack success rate (%)")
    axes[0][-1].legend(fontsize=7, title="dashed: greedy, dotted: worst case", title_fontsize=7)
    fig.suptitle(f"decoding sweep on {', '.join(sorted(rows['benchmark'].unique()))}")
    fig.tight_layout()
    path = out / "asr_vs_decoding.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summary_table(frame: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """One row per setup: configurations, best single configuration's ASR, worst case over all."""
    worst = worst_case(frame)
    if worst.empty:
        return worst
    configs = table[table[STRATEGY] != WORST] if STRATEGY in table.columns else table
    best = configs.groupby(SETUP, dropna=False)["asr"].max().rename("best_config_asr").reset_index()
    summary = worst.merge(best, on=SETUP, how="left").rename(columns={"asr": "worst_case_asr"})
    return summary[SETUP + ["configs", "n", "behaviors", "best_config_asr", "worst_case_asr", "undecided", "errors"]]


def plot_summary(summary: pd.DataFrame, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    varying = [c for c in SETUP if summary[c].nunique() > 1] or ["attack"]
    labels = summary[varying].astype(str).agg(" / ".join, axis=1)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(summary) + 1.2))
    y = range(len(summary))
    ax.barh([v + 0.2 for v in y], summary["worst_case_asr"], height=0.4, label="worst case (any configuration)")
    ax.barh([v - 0.2 for v in y], summary["best_config_asr"], height=0.4, label="best single configuration")
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 102)
    ax.set_xlabel("attack success rate (%)")
    ax.legend(fontsize=8)
    ax.set_title(" / ".join(varying), fontsize=9)
    fig.tight_layout()
    path = out / "asr_summary.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(records: Sequence[Record], out: Path) -> pd.DataFrame:
    """Write asr.csv/.md, asr_by_category.csv/.md and sweep plots into `out`; return the ASR table."""
    out.mkdir(parents=True, exist_ok=True)
    frame = to_frame(records)
    if frame.empty:
        raise ValueError("no records to report")
    table = asr_table(frame)
    table.to_csv(out / "asr.csv", index=False)
    (out / "asr.md").write_text(markdown(table) + "\n")
    if frame["category"].astype(bool).any():
        by_category = asr_table(frame, extra=["category"])
        by_category.to_csv(out / "asr_by_category.csv", index=False)
        (out / "asr_by_category.md").write_text(markdown(by_category) + "\n")
    plot_sweeps(frame, table, out)
    plot_asr_vs_budget(frame, out)
    if f"param.{STRATEGY}" in frame.columns:
        worst = worst_case(frame, breakdowns=BREAKDOWNS, strategies_only=True)
        if not worst.empty:
            worst = worst.rename(columns={c: c.removeprefix("param.") for c in worst.columns})
            worst.to_csv(out / "asr_worst_case.csv", index=False)
            (out / "asr_worst_case.md").write_text(markdown(worst) + "\n")
        plot_decoding(table, out)
    if len(frame.groupby(SETUP)) > 1:  # several runs merged (a sweep)
        summary = summary_table(frame, table)
        if not summary.empty:
            summary.to_csv(out / "asr_summary.csv", index=False)
            (out / "asr_summary.md").write_text(markdown(summary) + "\n")
            plot_summary(summary, out)
    return table


def load_folders(folders: Sequence[Path]) -> list[Record]:
    records: list[Record] = []
    for folder in folders:
        path = folder / "records.jsonl" if folder.is_dir() else folder
        if not path.exists():
            raise SystemExit(f"harness.report: {path} does not exist (give run folders that hold records.jsonl)")
        records.extend(RecordStore(path).load().values())
    return records


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="run folders (or records.jsonl files); searched recursively")
    parser.add_argument("--out", type=Path, default=Path("results/report"), help="where the merged tables and plots go")
    args = parser.parse_args(argv)
    folders = sorted({p.parent for f in args.folders for p in ([f] if f.is_file() else f.rglob("records.jsonl"))})
    if not folders:
        raise SystemExit(f"harness.report: no records.jsonl under {', '.join(map(str, args.folders))}")
    log.info("merging %d run folders", len(folders))
    table = write(load_folders(folders), args.out)
    summary = args.out / "asr_summary.md"
    print(summary.read_text() if summary.exists() else markdown(table))
    print(f"\n{len(folders)} run folders merged; written to {args.out}/")


if __name__ == "__main__":
    main()
