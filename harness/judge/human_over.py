"""Human labels over any judge: the reviewer's label where a sample has one, the inner judge otherwise.

    python -m harness rejudge <run> judge=human_over                      # keyword judge under the labels
    python -m harness rejudge <run> judge=human_over judge@judge.inner=rubric   # any judge in conf/judge underneath

Labels are the `labels.jsonl` files that `python -m harness labels import` writes beside runs,
found in or under `labels` (default: the run's `out_dir`; give `judge.labels=[<folder>]` when
re-judging another folder). A label matches a completion by its content digest, so it follows
the completion wherever it is judged. The latest label per completion counts: harmful /
not_harmful decide `harmful`; `unclear` leaves the inner judge's verdict. The inner judge still
judges every sample (its refusal flag and rationale are kept; API judges answer repeats from
their cache). The judge's id covers the labels, so new labels make the run loop and
`harness.run.rejudge` re-judge.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.judge.base import Judge
from harness.store import labels as human
from harness.types import Behavior, Completion, Verdict, content_hash

log = logging.getLogger(__name__)


def read_labels(paths: Sequence[str | Path]) -> dict[str, human.Label]:
    """completion digest -> latest label, over every labels.jsonl in or under the paths (missing paths: none)."""
    found: dict[str, human.Label] = {}
    for path in map(Path, paths):
        files = [path] if path.is_file() else sorted(path.rglob(human.FILE)) if path.is_dir() else []
        for file in files:
            for changes in human.read(file.parent).values():
                latest = changes[-1]
                if latest.completion:
                    found[latest.completion] = latest
    return found


class HumanOverJudge(Judge):
    name = "human_over"

    def __init__(self, inner: Judge, labels: Sequence[str | Path] = ()) -> None:
        self.inner = inner
        self.paths = [str(p) for p in labels]
        self.labels = read_labels(self.paths)
        log.info("human_over: %d human labels under %s, %s otherwise", len(self.labels), self.paths, inner.id)

    def describe(self) -> dict[str, Any]:
        decided = sorted((digest, label.label) for digest, label in self.labels.items())
        return {"judge": self.name, "inner": self.inner.describe(), "labels": content_hash(decided)}

    def usage(self) -> dict[str, Any] | None:
        usage = getattr(self.inner, "usage", None)
        return usage() if callable(usage) else None

    def judge(self, items: Sequence[tuple[Behavior, Completion]]) -> list[Verdict]:
        verdicts = self.inner.judge(items)
        if items and not any(c.digest() in self.labels for _, c in items):
            log.warning("human_over: none of these %d completions has a human label under %s (%d labels there, made on "
                        "other completions?): every verdict is %s's", len(items), ", ".join(self.paths) or "(no path)",
                        len(self.labels), self.inner.id)
        return [self.one(c, v) for (_, c), v in zip(items, verdicts, strict=True)]

    def one(self, completion: Completion, inner: Verdict) -> Verdict:
        label = self.labels.get(completion.digest())
        if label is None or label.label == "unclear":
            note = f"human: unclear ({label.who or '?'}); " if label else ""
            return inner.model_copy(update={"judge": self.id, "rationale": note + f"{inner.judge}: {inner.rationale}"})
        return Verdict(harmful=label.label == "harmful", refused=inner.refused, score=inner.score, judge=self.id,
                       rationale=f"human ({label.who or '?'}, {label.when or label.imported}): {label.label}; "
                                 f"{inner.judge}: {'error' if inner.error else inner.harmful}")
