"""Turns to break: how many turns a multi-turn attack's conversations hold out (attack=crescendo).

Each conversation is one behavior of a harmful benchmark under one set-up and attack configuration; its
records carry `params.turn` (the turn's place in the conversation the target saw; a backtracked turn and
its retry share it). A conversation *breaks* at the first turn whose answer the run's judge labelled
harmful; one that never does is *censored* at its last judged turn (it ended unbroken: its turn budget,
a failed request, a full context). Records with a judge error count as not judged.

Kaplan-Meier gives S(t), the share of behaviors still unbroken after t turns. Its 95 % interval: while no
conversation has been censored before t, S(t) is a plain share of the behaviors and gets the harness's
interval for one vote per behavior (`stats.count_interval`, Wilson); after a censoring, Greenwood's variance
on the log(-log) scale (Kalbfleisch and Prentice), which stays inside [0, 1], and Wilson on the behaviors
still at risk where S(t) is 0 or 1 (the log scale has no width there).

`table(frame)` -> turns_to_break.csv/.md (one row per set-up and turn, t = 0 included); `plot` draws S(t)
as steps with its band (turns_to_break.png).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.stats import Z95, count_interval
from harness.analysis.tables import SETUP, param_columns

TURN = "param.turn"
COLUMNS = ["turn", "at_risk", "broken", "censored", "backtracks", "survival", "survival_lo", "survival_hi"]


def kaplan_meier(times: np.ndarray, events: np.ndarray) -> pd.DataFrame:
    """S(t) at t = 0 .. max(times), in %, with its interval. `times`: the turn of the break, or of the censoring
    (`events` False): the conversation survived that turn and was seen no longer."""
    times, events = np.asarray(times, dtype=int), np.asarray(events, dtype=bool)
    n = len(times)
    rows = [{"turn": 0, "at_risk": n, "broken": 0, "censored": 0, "survival": 100.0, "survival_lo": 100.0,
             "survival_hi": 100.0}]
    s, greenwood, censored_before = 1.0, 0.0, False
    for t in range(1, int(times.max()) + 1 if n else 1):
        at_risk = int((times >= t).sum())
        broken = int(((times == t) & events).sum())
        censored = int(((times == t) & ~events).sum())
        if at_risk:
            s *= 1.0 - broken / at_risk
            if broken < at_risk:
                greenwood += broken / (at_risk * (at_risk - broken))
        if not censored_before:
            lo, hi = count_interval(round(s * n), n)
        elif 0.0 < s < 1.0:
            spread = Z95 * math.sqrt(greenwood) / abs(math.log(s))
            lo, hi = s ** math.exp(spread), s ** math.exp(-spread)
        else:
            lo, hi = count_interval(round(s * at_risk), at_risk) if at_risk else (math.nan, math.nan)
        rows.append({"turn": t, "at_risk": at_risk, "broken": broken, "censored": censored, "survival": 100.0 * s,
                     "survival_lo": 100.0 * lo, "survival_hi": 100.0 * hi})
        censored_before = censored_before or censored > 0
    return pd.DataFrame(rows)


def table(frame: pd.DataFrame) -> pd.DataFrame | None:
    """One Kaplan-Meier curve per set-up (and attack configuration other than the turn); None without turns."""
    if TURN not in frame.columns:
        return None
    rows = frame[frame[TURN].notna() & (frame["label"] == "harmful")]
    if rows.empty:
        return None
    rows = rows.assign(_turn=rows[TURN].astype(int), _broken=rows["harmful"].eq(True) & ~rows["error"])
    keys = SETUP + [c for c in param_columns(rows) if c != TURN and rows[c].notna().any()]
    parts = []
    for setup, part in rows.groupby(keys, dropna=False, sort=True):
        judged = part[~part["error"]]
        if judged.empty:
            continue
        last = judged.groupby("behavior")["_turn"].max()
        broke = judged[judged["_broken"]].groupby("behavior")["_turn"].min().reindex(last.index)
        events = broke.notna().to_numpy()
        times = np.where(events, broke.fillna(0), last).astype(int)
        curve = kaplan_meier(times, events)
        # records beyond a conversation's first at a turn: its backtracks there
        tries = (part.groupby(["_turn", "behavior"]).size() - 1).groupby(level=0).sum()
        curve["backtracks"] = [int(tries.get(t, 0)) for t in curve["turn"]]
        for key, value in zip(keys, setup, strict=True):
            curve[key] = value
        parts.append(curve)
    if not parts:
        return None
    out = pd.concat(parts, ignore_index=True)
    out = out[keys + COLUMNS].rename(columns={c: c.removeprefix("param.") for c in keys})
    return out.dropna(axis=1, how="all")


def plot(survival: pd.DataFrame, out: Path) -> Path:
    """S(t) as steps, one line per set-up, with its 95 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [c for c in survival.columns if c not in COLUMNS]
    varying = [c for c in keys if survival[c].nunique() > 1] or ["attack"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, part in survival.groupby(varying, sort=True):
        part = part.sort_values("turn")
        name = " / ".join(map(str, label if isinstance(label, tuple) else (label,)))
        line, = ax.step(part["turn"], part["survival"], where="post", marker="o", ms=3,
                        label=f"{name} (n={int(part['at_risk'].iloc[0])})")
        ax.fill_between(part["turn"], part["survival_lo"], part["survival_hi"], step="post", color=line.get_color(),
                        alpha=0.15, lw=0)
    ax.set_xlabel("turns")
    ax.set_ylabel("behaviors still unbroken (%)")
    ax.set_ylim(-2, 102)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("turns to break (Kaplan-Meier, 95 % band)")
    fig.tight_layout()
    path = out / "turns_to_break.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
