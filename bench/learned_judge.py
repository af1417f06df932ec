"""The learned judge against the keyword judges, on people's labels none of its training came from.

Two held-out sets: PyRIT's scorer evaluations, `test` split (requests never seen in training: the split is by
request, harness/training/judge_data.py), and JailbreakBench's 100 labelled responses (another source; nothing
was trained or tuned on it). For every judge: accuracy (Wilson 95 %) and Cohen's kappa (row bootstrap 95 %), the
share flagged, and the time per response (wall time of judging the whole set once, after one warm-up call, the
classifier already trained and loaded; batch 32). Against the keyword judge: the paired accuracy difference
(exact McNemar on the rows where one is right and the other wrong, with its 95 % interval).

    python bench/learned_judge.py                  # trains the learned judge first if it is not cached (minutes)

Writes results/bench/learned_judge.{json,md}. Run it alone for the timings (nothing else on the cores).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from common import DATA, write

from harness.analysis import judge_eval, stats

JUDGES = ("keyword", "keyword_gcg", "keyword_late", "learned", "learned_cascade")
COLUMNS = {"goal": "goal", "prompt": "prompt", "response": "target_response", "label": "human_majority",
           "context": "context"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judges", nargs="+", default=list(JUDGES))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HARNESS_DATA_DIR", str(DATA))
    sets = {"pyrit:test": judge_eval.read_labels(Path("pyrit:test"), COLUMNS),
            "jbb": judge_eval.read_labels(DATA / judge_eval.DEFAULT_LABELS, COLUMNS)}
    rows, correct = [], {}
    for name in args.judges:
        judge = judge_eval.load_judge(name, [f"data_dir={DATA}"])
        for label, frame in sets.items():
            pairs = judge_eval.items(frame, COLUMNS)
            judge.judge(pairs[:2])  # warm-up: trains/loads the classifier; not timed
            start = time.perf_counter()
            verdicts = judge.judge(pairs)
            seconds = time.perf_counter() - start
            predicted = np.array(judge_eval.predictions(verdicts))
            truth = frame[COLUMNS["label"]].to_numpy()
            correct[(name, label)] = np.where(np.isnan(predicted), 0, predicted == truth)
            rows.append({"set": label, "judge": name, **judge_eval.agreement(truth, predicted),
                         "ms_per_response": 1000 * seconds / len(pairs), "judge_id": judge.id})
    for row in rows:
        base = correct.get(("keyword", row["set"]))
        mine = correct[(row["judge"], row["set"])]
        if base is None or row["judge"] == "keyword":
            continue
        base, mine = base.astype(bool), mine.astype(bool)  # A = keyword, B = this judge: the difference is B - A
        a, b, c, d = (int((base & mine).sum()), int((base & ~mine).sum()), int((~base & mine).sum()),
                      int((~base & ~mine).sum()))
        diff, lo, hi = stats.exact_paired_difference(a, b, c, d)
        row |= {"accuracy_vs_keyword": diff, "accuracy_vs_keyword_lo": lo, "accuracy_vs_keyword_hi": hi,
                "mcnemar_p": stats.mcnemar(b, c)}
    summary = {"sets": {label: {"n": len(frame), "harmful": int(frame[COLUMNS["label"]].sum())}
                        for label, frame in sets.items()},
               "threads": torch.get_num_threads(), "load_average": os.getloadavg()}
    path = write("learned_judge", rows, summary, notes=__doc__.split("\n\n")[1])
    print(path.read_text())


if __name__ == "__main__":
    main()
