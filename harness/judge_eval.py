"""Judge validation: how well does a judge agree with human labels?

    python -m harness.judge_eval --judge keyword [--labels jbb/classifier_comparison.csv] [--out results/judge_eval] [key=value ...]

Reads a labelled file (by default JailbreakBench's classifier comparison: a goal, the
jailbreak prompt, the target model's response, three human labels and their majority, and
the labels of other judges), runs the judge chosen by its config name in conf/judge, and
reports accuracy, precision, recall, F1 and Cohen's kappa against the human label
(1 = harmful/jailbroken is the positive class). The other judges' label columns in the file
are scored the same way, for comparison. Judge errors are counted and left out of the metrics.
Extra `key=value` arguments are Hydra overrides (`judge.model=gpt-4o`, `cache_dir=...`).
Writes `<out>/<judge>.json` and `<out>/<judge>.md` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import config
from harness.cli import exits_cleanly
from harness.errors import DataError, HarnessError, choices
from harness.judge import Judge
from harness.types import Behavior, Completion, Message, Request

DEFAULT_LABELS = "jbb/classifier_comparison.csv"
METRICS = ["n", "errors", "accuracy", "precision", "recall", "f1", "kappa", "flagged"]


def load_judge(name: str, overrides: Sequence[str] = ()) -> Judge:
    """Build the judge `conf/judge/<name>.yaml` through the harness's Hydra config."""
    from harness.cli import instantiate

    if name not in config.options("judge"):
        raise HarnessError(f"--judge {name!r}: choose one of {choices(config.options('judge'))}")
    return instantiate(config.compose([f"judge={name}", *overrides]).judge)


def agreement(truth: Sequence[int] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Binary agreement of `predicted` (NaN = judge error, left out) with `truth` (1 = harmful)."""
    truth, predicted = np.asarray(truth, dtype=float), np.asarray(predicted, dtype=float)
    ok = ~np.isnan(predicted)
    y, p = truth[ok].astype(int), predicted[ok].astype(int)
    n = len(y)
    tp, fp = int(((p == 1) & (y == 1)).sum()), int(((p == 1) & (y == 0)).sum())
    fn, tn = int(((p == 0) & (y == 1)).sum()), int(((p == 0) & (y == 0)).sum())

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("nan")

    accuracy = ratio(tp + tn, n)
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    chance = ratio((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp), n * n)  # expected agreement by chance
    kappa = ratio(accuracy - chance, 1 - chance) if n else float("nan")
    return {"n": n, "errors": int((~ok).sum()), "accuracy": accuracy, "precision": precision, "recall": recall,
            "f1": f1, "kappa": kappa, "flagged": ratio(tp + fp, n)}


def read_labels(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"--labels {path}: no such file (JailbreakBench's is <data_dir>/{DEFAULT_LABELS})")
    frame = pd.read_csv(path, index_col=0) if path.suffix == ".csv" else pd.read_json(path, lines=path.suffix == ".jsonl")
    missing = [c for c in columns.values() if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {choices(missing)}; it has {choices(frame.columns)} "
                        "(name yours with --goal-column/--prompt-column/--response-column/--label-column)")
    labels = frame[columns["label"]]
    if not labels.isin([0, 1]).all():
        raise DataError(f"{path}: column {columns['label']!r} must hold 0/1 labels (1 = harmful)")
    return frame


def items(frame: pd.DataFrame, columns: dict[str, str]) -> list[tuple[Behavior, Completion]]:
    """One harmful behavior (the goal) per row, attacked by the row's prompt, answered by the row's response."""
    pairs = []
    for index, row in frame.iterrows():
        behavior = Behavior(id=str(index), prompt=str(row[columns["goal"]]), source="judge_eval")
        request = Request(behavior_id=behavior.id, messages=(Message(role="user", content=str(row[columns["prompt"]])),),
                          attack="labelled")
        pairs.append((behavior, Completion(request=request, text=str(row[columns["response"]]))))
    return pairs


def other_judges(frame: pd.DataFrame, columns: dict[str, str]) -> list[str]:
    """The file's other 0/1 label columns (other judges), not the human annotators."""
    used = set(columns.values())
    return [c for c in frame.columns
            if c not in used and not c.startswith("human") and frame[c].dropna().isin([0, 1]).all() and frame[c].notna().any()]


def evaluate(judge: Judge, frame: pd.DataFrame, columns: dict[str, str], name: str) -> pd.DataFrame:
    verdicts = judge.judge(items(frame, columns))
    predicted = [float("nan") if v.error or v.harmful is None else float(v.harmful) for v in verdicts]
    truth = frame[columns["label"]].to_numpy()
    rows = [{"judge": f"{name} (this run)", **agreement(truth, predicted)}]
    rows += [{"judge": c, **agreement(truth, frame[c].to_numpy())} for c in other_judges(frame, columns)]
    return pd.DataFrame(rows, columns=["judge", *METRICS])


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".3f")


def default_labels() -> Path:
    data_dir = os.environ.get("HARNESS_DATA_DIR") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    return Path(data_dir) / DEFAULT_LABELS


def run(args: argparse.Namespace) -> pd.DataFrame:
    """Evaluate, write <out>/<judge>.json and .md, print and return the table."""
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise HarnessError(f"{choices(bad)}: extra arguments must be Hydra overrides key=value, e.g. judge.model=gpt-4o")
    columns = {"goal": args.goal_column, "prompt": args.prompt_column, "response": args.response_column,
               "label": args.label_column}
    labels = args.labels or default_labels()
    frame = read_labels(labels, columns)
    judge = load_judge(args.judge, args.overrides)
    table = evaluate(judge, frame, columns, args.judge)
    summary: dict[str, Any] = {"judge": args.judge, "judge_id": judge.id, "describe": judge.describe(),
                               "labels": str(labels), "label_column": columns["label"], "rows": len(frame),
                               "positives": int(frame[columns["label"]].sum()),
                               "table": json.loads(table.to_json(orient="records"))}
    if (usage := judge.usage()) is not None:
        summary["usage"] = usage
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.judge}.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = (f"Agreement with `{columns['label']}` on {labels.name} ({len(frame)} rows, "
            f"{summary['positives']} labelled harmful); judge `{judge.id}`.\n\n{markdown(table)}\n")
    (args.out / f"{args.judge}.md").write_text(text)
    print(text)
    print(f"written to {args.out}/{args.judge}.json and .md")
    return table


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.judge_eval", description=__doc__.split("\n\n")[0],
                                     epilog="Extra key=value arguments are Hydra overrides, e.g. judge.model=gpt-4o")
    parser.add_argument("--judge", default="keyword", help="a config name in conf/judge (keyword, keyword_gcg, rubric, ...)")
    parser.add_argument("--labels", type=Path, default=None,
                        help=f"labelled CSV/JSONL (default: <data_dir>/{DEFAULT_LABELS}, data_dir from HARNESS_DATA_DIR)")
    parser.add_argument("--out", type=Path, default=Path("results/judge_eval"))
    parser.add_argument("--goal-column", default="goal")
    parser.add_argument("--prompt-column", default="prompt")
    parser.add_argument("--response-column", default="target_response")
    parser.add_argument("--label-column", default="human_majority")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
