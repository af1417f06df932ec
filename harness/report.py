"""ASR tables and plots from records.

ASR = share of judged completions of *harmful* behaviors labelled harmful. Judge errors are
counted in their own column and excluded from the denominator (never counted as safe or
unsafe). The refusal rate (share of judged completions that refuse) is reported for every
row, which is the over-refusal figure on benign benchmarks (XSTest safe, JBB benign).

    python -m harness.report results/runs/a results/runs/b --out results/merged
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from harness.records import RecordStore
from harness.types import Record

log = logging.getLogger(__name__)

SETUP = ["model", "defense", "attack", "benchmark"]
PARAM_LABELS = {"k": "prefilled harmful tokens k"}


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
        })

    table = frame.groupby(keys, dropna=False, sort=True).apply(summarise, include_groups=False).reset_index()
    table = table.rename(columns={c: c.removeprefix("param.") for c in table.columns})
    table["n"] = table["n"].astype(int)
    table["n_harmful"] = table["n_harmful"].astype(int)
    table["errors"] = table["errors"].astype(int)
    return table.dropna(axis=1, how="all")


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".1f")


def plot_sweeps(frame: pd.DataFrame, table: pd.DataFrame, out: Path) -> list[Path]:
    """One PNG per numeric attack parameter that takes several values (ASR against it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for column in param_columns(frame):
        name = column.removeprefix("param.")
        values = pd.to_numeric(table[name], errors="coerce")
        if values.isna().any() or values.nunique() < 2:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        lines = [c for c in SETUP if c != "attack" and table[c].nunique() > 1] or ["model"]
        for label, part in table.groupby([table[c] for c in lines]):
            part = part.sort_values(name)
            ax.plot(part[name], part["asr"], marker="o", label=" / ".join(map(str, label if isinstance(label, tuple) else (label,))))
        ax.set_xlabel(PARAM_LABELS.get(name, name))
        ax.set_ylabel("attack success rate (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{', '.join(sorted(table['attack'].unique()))} on {', '.join(sorted(table['benchmark'].unique()))}")
        fig.tight_layout()
        path = out / f"asr_vs_{name}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


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
    table = write(load_folders(folders), args.out)
    print(markdown(table))
    print(f"\nwritten to {args.out}/")


if __name__ == "__main__":
    main()
