"""Judge validation: how well does a judge agree with human labels?

    python -m harness judge-eval --judge keyword [--labels jbb/classifier_comparison.csv] [--out results/judge_eval] [key=value ...]

Reads a labelled file (by default JailbreakBench's classifier comparison: a goal, the
jailbreak prompt, the target model's response, three human labels and their majority, and
the labels of other judges), runs the judge chosen by its config name in conf/judge, and
reports accuracy, precision, recall, F1 and Cohen's kappa (accuracy with its Wilson interval, kappa with a
seeded row bootstrap: 95 %) against the human label
(1 = harmful/jailbroken is the positive class). The other judges' label columns in the file
are scored the same way, for comparison. Judge errors are counted and left out of the metrics.
Extra `key=value` arguments are Hydra overrides (`judge.model=gpt-4o`, `cache_dir=...`).
Writes `<out>/<judge>.json` and `<out>/<judge>.md` and prints the table. `--write-calibration`
also stores the judge's sensitivity and specificity (harness/analysis/calibration.py), which the ASR
tables of runs judged by this exact judge use for a judge-corrected ASR.

Input format (CSV, TSV or JSONL; one row per judged response; column names are options):
  goal              the harmful request the response is judged against    (--goal-column)
  prompt            what the model was sent (the jailbreak prompt)         (--prompt-column)
  target_response   the model's response: what the judge reads            (--response-column)
  human_majority    the human label, 0 = safe, 1 = harmful/jailbroken      (--label-column)
  context           optional: a contextual behavior's context, given to judges that use it
                    (harmbench_cls)                                        (--context-column)
  id                optional: the row's id (default: its line in the file)
`--labels pyrit:test` (or pyrit:dev, pyrit:train) reads a split of PyRIT's human-labelled scorer evaluations
from the installed `pyrit` wheel instead (harness/training/judge_data.py; the learned judge never trains on
`test`).
Any other column holding only 0/1 is scored as another judge, for comparison (columns named
human* are the annotators and are left out). A judge that errs on most rows (exact_match needs
a reference answer, for example) is reported with a warning: it probably does not apply.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import config
from harness.analysis import calibration, stats
from harness.analysis.outputs import output_folder
from harness.errors import DataError, HarnessError, choices
from harness.judge.base import Judge
from harness.types import Behavior, Completion, Message, Request, Verdict
from harness.util.data_files import read_table

log = logging.getLogger(__name__)
DEFAULT_LABELS = "jbb/classifier_comparison.csv"
DEFAULT_CONTEXT = "context"
METRICS = ["n", "errors", "accuracy", "accuracy_lo", "accuracy_hi", "precision", "recall", "f1", "kappa", "kappa_lo",
           "kappa_hi", "flagged"]


def load_judge(name: str, overrides: Sequence[str] = ()) -> Judge:
    """Build the judge `conf/judge/<name>.yaml` through the harness's Hydra config."""
    from harness.config import instantiate

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
    accuracy_lo, accuracy_hi = stats.count_interval(tp + tn, n)
    kappa_lo, kappa_hi = stats.kappa_interval(y, p)
    return {"n": n, "errors": int((~ok).sum()), "accuracy": accuracy, "accuracy_lo": accuracy_lo,
            "accuracy_hi": accuracy_hi, "precision": precision, "recall": recall, "f1": f1, "kappa": kappa,
            "kappa_lo": kappa_lo, "kappa_hi": kappa_hi, "flagged": ratio(tp + fp, n)}


PYRIT = "pyrit:"


def read_labels(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    if str(path).startswith(PYRIT):
        from harness.training import judge_data

        frame = judge_data.load(str(path).removeprefix(PYRIT), root=None)
        frame = frame.rename(columns={"goal": columns["goal"], "target_response": columns["response"],
                                      "human_majority": columns["label"]})
        frame[columns["prompt"]] = frame[columns["goal"]]  # the request as sent: PyRIT's objective
        return frame
    if not path.is_file():
        raise DataError(f"--labels {path}: no such file (JailbreakBench's is <data_dir>/{DEFAULT_LABELS})")
    frame = read_table(path)  # every column a column (no index guessed), malformed rows named by line
    needed = {k: v for k, v in columns.items() if k != "context" or v != DEFAULT_CONTEXT}
    missing = [c for c in needed.values() if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {choices(missing)}; it has {choices(frame.columns)} "
                        "(name yours with --goal-column/--prompt-column/--response-column/--label-column; "
                        "python -m harness judge-eval --help describes the format)")
    labels = pd.to_numeric(frame[columns["label"]], errors="coerce")
    if not labels.isin([0, 1]).all():
        raise DataError(f"{path}: column {columns['label']!r} must hold 0/1 labels (1 = harmful)")
    frame[columns["label"]] = labels.astype(int)
    return frame


def items(frame: pd.DataFrame, columns: dict[str, str]) -> list[tuple[Behavior, Completion]]:
    """One harmful behavior (the goal) per row, attacked by the row's prompt, answered by the row's response."""
    pairs = []
    context = columns.get("context") if columns.get("context") in frame.columns else None
    for index, row in frame.iterrows():
        behavior = Behavior(id=str(row["id"]) if "id" in frame.columns else str(index), prompt=str(row[columns["goal"]]),
                            context=str(row[context]) if context else "", source="judge_eval")
        request = Request(behavior_id=behavior.id, messages=(Message(role="user", content=str(row[columns["prompt"]])),),
                          attack="labelled")
        pairs.append((behavior, Completion(request=request, text=str(row[columns["response"]]))))
    return pairs


def other_judges(frame: pd.DataFrame, columns: dict[str, str]) -> list[str]:
    """The file's other 0/1 label columns (other judges), not the human annotators."""
    used = set(columns.values()) | {"id"}
    out = []
    for c in frame.columns:
        values = pd.to_numeric(frame[c].replace("", np.nan), errors="coerce")
        if c in used or c.startswith(("human", "Unnamed: ")) or values.isna().all():
            continue
        if values.dropna().isin([0, 1]).all() and values.notna().sum() == (frame[c] != "").sum():
            out.append(c)
    return out


def predictions(verdicts: Sequence[Verdict]) -> list[float]:
    """The judge's label per row: 1 harmful, 0 not, NaN for a judge error."""
    return [float("nan") if v.error or v.harmful is None else float(v.harmful) for v in verdicts]


def evaluate(judge: Judge, frame: pd.DataFrame, columns: dict[str, str], name: str,
             pairs: Sequence[tuple[Behavior, Completion]] | None = None,
             verdicts: Sequence[Verdict] | None = None) -> pd.DataFrame:
    """Agreement of `judge` (its `verdicts` when already computed) with the labels, beside the file's other judges."""
    if verdicts is None:
        verdicts = judge.judge(list(pairs) if pairs is not None else items(frame, columns))
    predicted = predictions(verdicts)
    truth = frame[columns["label"]].to_numpy()
    rows = [{"judge": f"{name} (this run)", **agreement(truth, predicted)}]
    rows += [{"judge": c, **agreement(truth, pd.to_numeric(frame[c].replace("", np.nan), errors="coerce").to_numpy())}
             for c in other_judges(frame, columns)]
    errors = [v.error for v in verdicts if v.error]
    if len(errors) * 2 > len(verdicts):
        log.warning("judge %s gave errors on %d of %d rows (first: %s): it probably does not apply to this file",
                    name, len(errors), len(verdicts), errors[0][:160])
    return pd.DataFrame(rows, columns=["judge", *METRICS])


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".3f")


def default_labels() -> Path:
    data_dir = os.environ.get("HARNESS_DATA_DIR") or str(Path(__file__).resolve().parents[3] / "shared" / "data")
    return Path(data_dir) / DEFAULT_LABELS


def run(args: Any) -> pd.DataFrame:
    """Evaluate, write <out>/<judge>.json and .md, print and return the table."""
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise HarnessError(f"{choices(bad)}: extra arguments must be Hydra overrides key=value, e.g. judge.model=gpt-4o")
    if args.run and args.labels:
        raise HarnessError(f"--run and --labels {args.labels}: give one source of human labels, the runs' stored labels "
                           "(--run) or a labelled file (--labels)")
    output_folder(args.out, args.run or ())  # checked before anything is judged or written
    if args.write_calibration:
        output_folder(args.calibration_dir or calibration.directory(), args.run or (), option="--calibration-dir")
    columns = {"goal": args.goal_column, "prompt": args.prompt_column, "response": args.response_column,
               "label": args.label_column, "context": args.context_column}
    pairs, labels = None, None
    if args.run:  # the human labels stored beside runs (python -m harness labels import) are the truth
        from harness.store.labels import ground_truth

        frame, pairs = ground_truth(args.run)
        columns = {"goal": "goal", "response": "response", "label": "human"}
        source = where = "the human labels of " + ", ".join(map(str, args.run))
    else:
        labels = args.labels or default_labels()
        frame = read_labels(labels, columns)
        source, where = labels.name, str(labels)
    judge = load_judge(args.judge, args.overrides)
    verdicts = judge.judge(list(pairs) if pairs is not None else items(frame, columns))
    table = evaluate(judge, frame, columns, args.judge, verdicts=verdicts)
    summary: dict[str, Any] = {"judge": args.judge, "judge_id": judge.id, "describe": judge.describe(),
                               "labels": where, "label_column": columns["label"], "rows": len(frame),
                               "positives": int(frame[columns["label"]].sum()),
                               "table": json.loads(table.to_json(orient="records"))}
    if (usage := judge.usage()) is not None:
        summary["usage"] = usage
    (args.out / f"{args.judge}.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = (f"Agreement with `{columns['label']}` on {source} ({len(frame)} rows, "
            f"{summary['positives']} labelled harmful); judge `{judge.id}`.\n\n{markdown(table)}\n")
    (args.out / f"{args.judge}.md").write_text(text)
    errors = int(table.iloc[0]["errors"])
    if errors * 2 > len(frame):
        text += (f"\nWARNING: judge {args.judge!r} gave errors on {errors} of {len(frame)} rows; it probably does not "
                 f"apply to this file (see the log for the first error).\n")
    print(text)
    print(f"written to {args.out}/{args.judge}.json and .md")
    if args.write_calibration:
        data_dir = Path(os.environ.get("HARNESS_DATA_DIR") or default_labels().parents[1]).resolve()
        if labels is None:
            named = where
        else:
            named = f"<data_dir>/{labels.resolve().relative_to(data_dir)}" if labels.resolve().is_relative_to(data_dir) else str(labels)
        measured = calibration.measure(judge.id, frame[columns["label"]].to_numpy(), predictions(verdicts), named,
                                       columns["label"])
        path = calibration.save(measured, args.calibration_dir)
        print(f"calibration written to {path}: {measured.too_weak() or measured.note()}")
    return table
