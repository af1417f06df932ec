"""Answers sampled from a model, cached: harmful answers from an unaligned model (as the
shallow-alignment paper sampled them from a jailbroken one) and benign answers for
utility anchors (the base model's own, so anchors teach no new style).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from harness.engine.hf import HFEngine
from harness.judge.keyword import KeywordJudge
from harness.model.base import Model
from harness.training.loop import Example
from harness.types import (
    Behavior,
    Completion,
    Frozen,
    Message,
    Request,
    Sampling,
    content_hash,
)
from harness.util.cache import cached_folder

log = logging.getLogger(__name__)


class Answer(Frozen):
    text: str
    complete: bool  # the model ended its turn; False when it was cut off at the token limit

    def example(self, messages: Sequence[Message], **kw) -> Example:
        """A training example answering `messages` with this answer: taught to end only if it ended."""
        return Example(messages=tuple(messages), response=self.text, ends=self.complete, **kw)


def sample_answers(
    model: Model, behaviors: Sequence[Behavior], max_tokens: int = 64, drop_refusals: bool = True, batch_size: int = 64
) -> dict[str, str]:
    """behavior id -> the model's greedy answer text (refusals dropped when asked). Cached on disk."""
    return {k: a.text for k, a in sampled_answers(model, behaviors, max_tokens, drop_refusals, batch_size).items()}


def sampled_answers(
    model: Model, behaviors: Sequence[Behavior], max_tokens: int = 64, drop_refusals: bool = True, batch_size: int = 64
) -> dict[str, Answer]:
    """behavior id -> the model's greedy answer and whether it was complete (refusals dropped when asked). Cached."""
    sampling = Sampling(max_tokens=max_tokens)
    requests = [Request(behavior_id=b.id, messages=(Message(role="user", content=b.query()),), sampling=sampling, attack="answers")
                for b in behaviors]
    key = content_hash({"model": model.id, "requests": [r.key for r in requests]})

    def build(out):
        completions = HFEngine(model, batch_size=batch_size, stage="sampling answers").generate(requests)
        rows = [{"id": c.request.behavior_id, "answer": c.text.strip(), "finish": c.finish_reason} for c in completions]
        (out / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    folder = cached_folder(model.cache_dir / "answers", f"{model.name}-{key}", build, marker="answers.jsonl")
    rows = [json.loads(line) for line in (folder / "answers.jsonl").read_text().splitlines()]
    by_id = {b.id: b for b in behaviors}
    request_of = {r.behavior_id: r for r in requests}
    judge = KeywordJudge()
    answers = {}
    for row in rows:
        if not row["answer"]:
            continue
        if drop_refusals:
            (verdict,) = judge.judge([(by_id[row["id"]], Completion(request=request_of[row["id"]], text=row["answer"]))])
            if verdict.refused:
                continue
        answers[row["id"]] = Answer(text=row["answer"], complete=row.get("finish") == "stop")
    log.info("answers from %s: %d of %d usable", model.name, len(answers), len(behaviors))
    return answers
