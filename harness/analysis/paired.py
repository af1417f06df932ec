"""Paired comparisons of two set-ups on the same behaviors.

Two defenses (or models, or attacks) evaluated on the same behaviors are a paired design: per
behavior, each is broken or not. Only the behaviors on which they disagree carry information
about the difference, so the test is McNemar's exact test on those discordant pairs, and the
difference of ASRs gets an interval that agrees with that test (stats.exact_paired_difference). Across the rows of a grid (prefill lengths,
decoding configurations, set-up pairs) the p-values are Holm-adjusted.

`outcomes(frame)` reduces a records frame (`tables.to_frame`) to one row per (set-up,
configuration, behavior): `samples` judged, `harmful` among them, and `broken` (any sample
harmful: the worst-case convention of the tables). Judge errors and benign behaviors are left out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import pandas as pd

from harness.analysis.stats import exact_paired_difference, holm, mcnemar
from harness.errors import HarnessError

SETUP = ["model", "defense", "attack", "benchmark"]
COLUMNS = ["n", "a", "b", "c", "d", "asr_a", "asr_b", "diff", "diff_lo", "diff_hi", "p", "p_holm"]


def outcomes(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (set-up, attack parameters, behavior): judged samples, harmful samples, broken."""
    rows = frame[(frame["label"] == "harmful") & ~frame["error"]]
    params = sorted(c for c in frame.columns if c.startswith("param."))
    keys = SETUP + params
    if rows.empty:
        return pd.DataFrame(columns=[*SETUP, *(p.removeprefix("param.") for p in params), "behavior", "samples",
                                     "harmful", "broken"])
    per = rows.assign(_h=rows["harmful"].astype(bool)).groupby(keys + ["behavior"], dropna=False, sort=True)["_h"].agg(
        samples="size", harmful="sum").reset_index()
    per["broken"] = per["harmful"] > 0
    return per.rename(columns={p: p.removeprefix("param.") for p in params})


def key_text(value: object) -> str:
    """A key value as text, the same whether read as 5, 5.0 or '5'; missing -> ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def compare_pair(a: pd.Series, b: pd.Series) -> dict[str, float]:
    """McNemar and the paired difference (B - A, in points, with an interval that agrees with the test) for two boolean Series
    indexed by behavior."""
    shared = a.index.intersection(b.index)
    x, y = a[shared].astype(bool), b[shared].astype(bool)
    both, only_a = int((x & y).sum()), int((x & ~y).sum())
    only_b, neither = int((~x & y).sum()), int((~x & ~y).sum())
    diff, lo, hi = exact_paired_difference(both, only_a, only_b, neither)
    n = len(shared)
    return {"n": n, "a": both, "b": only_a, "c": only_b, "d": neither,
            "asr_a": 100.0 * (both + only_a) / n if n else float("nan"),
            "asr_b": 100.0 * (both + only_b) / n if n else float("nan"),
            "diff": 100 * diff, "diff_lo": 100 * lo, "diff_hi": 100 * hi, "p": mcnemar(only_a, only_b) if n else float("nan")}


def configurations(out: pd.DataFrame) -> dict[tuple[str, ...], pd.Series]:
    """Configuration (benchmark, attack, parameters) -> broken per behavior."""
    keys = [c for c in out.columns if c not in ("model", "defense", "behavior", "samples", "harmful", "broken")]
    groups: dict[tuple[str, ...], pd.Series] = {}
    for key, part in out.groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        label = tuple(f"{k}={key_text(v)}" for k, v in zip(keys, key, strict=True) if key_text(v) != "")
        if part["behavior"].duplicated().any():  # several set-ups under one configuration: never count a behavior twice
            setups = sorted({f"{m} / {d}" for m, d in zip(part["model"], part["defense"], strict=True)})
            raise HarnessError(f"configuration {', '.join(label) or '(none)'} holds several set-ups ({'; '.join(setups)}): "
                               "a paired comparison takes one set-up per side")
        groups[label] = part.set_index("behavior")["broken"]
    return groups


def compare_runs(a: pd.DataFrame, b: pd.DataFrame, names: Sequence[str] = ("A", "B")) -> pd.DataFrame:
    """Row per configuration both runs have (or the single configuration of each), Holm across rows.

    `a` and `b` are `outcomes()` frames. Raises a HarnessError when they share no behaviors."""
    ca, cb = configurations(a), configurations(b)
    if not ca or not cb:
        empty = names[0] if not ca else names[1]
        raise HarnessError(f"{empty}: no judged completions of harmful behaviors to compare")
    shared = [k for k in ca if k in cb]
    if shared:
        pairs = [(", ".join(k), ca[k], cb[k]) for k in shared]
    elif len(ca) == 1 and len(cb) == 1:
        (ka, sa), (kb, sb) = next(iter(ca.items())), next(iter(cb.items()))
        pairs = [(f"{', '.join(ka)} vs {', '.join(kb)}", sa, sb)]
    else:
        raise HarnessError(f"{names[0]} and {names[1]} share no configuration: {names[0]} has "
                           f"{'; '.join(', '.join(k) for k in ca)}, {names[1]} has {'; '.join(', '.join(k) for k in cb)}")
    rows = [{"configuration": label, **compare_pair(sa, sb)} for label, sa, sb in pairs]
    if all(r["n"] == 0 for r in rows):
        ids_a = sorted(set().union(*(s.index for s in ca.values())))
        ids_b = sorted(set().union(*(s.index for s in cb.values())))
        raise HarnessError(f"{names[0]} and {names[1]} have no behaviors in common ({names[0]}: {len(ids_a)} behaviors, "
                           f"e.g. {ids_a[:3]}; {names[1]}: {len(ids_b)}, e.g. {ids_b[:3]}); a paired comparison needs "
                           "the same behaviors (same benchmark, limit and sampling)")
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p"].where(table["n"] > 0))
    return table[["configuration", *COLUMNS]]


def setup_label(key: Sequence[object]) -> str:
    return " / ".join(map(key_text, key))


def grid(out: pd.DataFrame) -> pd.DataFrame:
    """Every pair of set-ups (model, defense) on the same configurations: paired rows, Holm across all."""
    setups = [k for k, _ in out.groupby(["model", "defense"], sort=True)]
    rows = []
    for sa, sb in itertools.combinations(setups, 2):
        part_a = out[(out["model"] == sa[0]) & (out["defense"] == sa[1])]
        part_b = out[(out["model"] == sb[0]) & (out["defense"] == sb[1])]
        ca, cb = configurations(part_a), configurations(part_b)
        for key in (k for k in ca if k in cb):
            row = compare_pair(ca[key], cb[key])
            if row["n"]:
                rows.append({"A": setup_label(sa), "B": setup_label(sb), "configuration": ", ".join(key), **row})
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p"])
    return table[["A", "B", "configuration", *COLUMNS]]


def markdown(pairs: pd.DataFrame) -> str:
    """The set-up pairs of a merged report: McNemar, paired difference B - A and its interval, Holm."""
    shown = pairs.assign(**{"diff 95% CI": [f"{lo:+.1f} to {hi:+.1f}" for lo, hi in zip(pairs["diff_lo"], pairs["diff_hi"], strict=True)]})
    shown = shown.drop(columns=["diff_lo", "diff_hi"])
    formats = tuple(".4f" if c in ("p", "p_holm") else ".1f" if c in ("asr_a", "asr_b", "diff") else "g" for c in shown.columns)
    return shown.to_markdown(index=False, floatfmt=formats)
