"""The report's plots: ASR against swept parameters, the decoding sweep, the merged summary, and
`asr_lines` (ASR against any x with bands), which the attack-budget plot and the experiments draw with.

Each draws the 95 % intervals the tables carry (`asr_lo`/`asr_hi` and `<rate>_lo/_hi`) as
bands around lines or error bars on bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.analysis import best_of_n, cost
from harness.analysis.tables import PARAM_LABELS, SETUP, STRATEGY, WORST, param_columns


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
        if name == best_of_n.PARAM:  # an augmentation's index, not a strength: plot_best_of_n draws ASR against N
            continue
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
            line, = ax.plot(part[name], part["asr"], marker="o", label=" / ".join(map(str, label if isinstance(label, tuple) else (label,))))
            band(ax, part[name], part, line.get_color())
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


def band(ax, xs, rows: pd.DataFrame, color: str) -> None:
    """The 95 % interval of the ASR as a shaded band around its line (when the rows carry one)."""
    if {"asr_lo", "asr_hi"} <= set(rows.columns):
        ax.fill_between(list(xs), list(rows["asr_lo"]), list(rows["asr_hi"]), color=color, alpha=0.15, lw=0)


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
            band(ax, sweep["value"], sweep, color)
            for kind, style in (("greedy", "--"), (WORST, ":")):
                level = part.loc[part[STRATEGY] == kind]
                if len(level):
                    ax.axhline(level["asr"].iloc[0], color=color, ls=style, lw=1)
                    if kind == WORST and "asr_lo" in level.columns:
                        ax.axhspan(level["asr_lo"].iloc[0], level["asr_hi"].iloc[0], color=color, alpha=0.07, lw=0)
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


def plot_summary(summary: pd.DataFrame, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    varying = [c for c in SETUP if summary[c].nunique() > 1] or ["attack"]
    labels = summary[varying].astype(str).agg(" / ".join, axis=1)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(summary) + 1.2))
    y = range(len(summary))
    for shift, column, label in ((0.2, "worst_case_asr", "worst case (any configuration)"),
                                 (-0.2, "best_config_asr", "best single configuration")):
        error = [summary[column] - summary[f"{column}_lo"], summary[f"{column}_hi"] - summary[column]]
        ax.barh([v + shift for v in y], summary[column], height=0.4, xerr=error, capsize=2, label=label)
        for v, value in zip(y, summary[column], strict=True):  # a 0 % bar has no width: say 0, or that data is missing
            ax.text(1 if pd.isna(value) else value + 1, v + shift, "no data" if pd.isna(value) else f"{value:.0f}",
                    va="center", fontsize=7)
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


def panels(path: Path, panels: Sequence[tuple[str, Sequence[tuple]]], title: str) -> Path:
    """One PNG of side-by-side panels, each (title, lines) with lines (label, x labels, ys, lows, highs): a value in
    percent against categorical strengths, with its 95 % band (error bars where a panel has one point)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, lines) in zip(axes[0], panels, strict=True):
        for j, (label, xs, ys, lows, highs) in enumerate(lines):
            at = list(range(len(xs)))
            if len(at) == 1:  # one point per line (a rate beside the axes): side by side, not on top of each other
                ax.errorbar([0.1 * j], ys, yerr=[[ys[0] - lows[0]], [highs[0] - ys[0]]], marker="o", capsize=4, label=label)
                ax.set_xlim(-0.5, 0.5 + 0.1 * j)
            else:
                line, = ax.plot(at, list(ys), marker="o", label=label)
                ax.fill_between(at, list(lows), list(highs), color=line.get_color(), alpha=0.15, lw=0)
            ax.set_xticks(at, [str(x) for x in xs])
        ax.set_title(name, fontsize=9)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("% of behaviors (95 % band)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_asr_vs_budget(frame: pd.DataFrame, out: Path) -> Path | None:
    x, lines = cost.budget_curves(frame)
    if not lines:
        return None
    label = "target queries" if x == "queries" else "forward passes (candidate evaluations)"
    return asr_lines(out / "asr_vs_queries.png", lines, f"budget: {label} per behavior", "ASR against attack budget")


def plot_best_of_n(curve: pd.DataFrame, out: Path) -> Path:
    """Best-of-N: ASR against the number of augmentations N (log scale) with its 95 % band, the power-law fit dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    lines = [c for c in SETUP if curve[c].nunique() > 1] or ["model"]
    for label, part in curve.groupby([curve[c] for c in lines]):
        name = " / ".join(map(str, label if isinstance(label, tuple) else (label,)))
        line, = ax.plot(part["N"], part["asr"], marker="o", label=name)
        band(ax, part["N"], part, line.get_color())
        if part["asr_fit"].notna().any():
            ax.plot(part["N"], part["asr_fit"], ls="--", color=line.get_color(), lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("augmentations N per behavior")
    ax.set_ylabel("attack success rate (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="dashed: power-law fit", title_fontsize=7)
    ax.set_title(f"best-of-N on {', '.join(sorted(curve['benchmark'].unique()))}")
    fig.tight_layout()
    path = out / "best_of_n.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
