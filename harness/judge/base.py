"""Judges label completions. A failure is a Verdict with `error` set, never a guess.

`Judge` is the interface. `ModelJudge` is the base of judges that ask a model (an API, a
classifier on an engine): it writes once what they share. Each distinct prompt is asked once
per batch; replies are cached on disk by judge id + prompt (`harness.judge.reply_cache`), only
parsable replies are kept, so an unparsable one is asked again next time; calls, tokens, cache
hits and errors are counted for `usage()`; and every failure becomes an error verdict.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.judge.reply_cache import ReplyCache
from harness.settings import Configured, Settings
from harness.types import Behavior, Completion, Verdict, content_hash

log = logging.getLogger(__name__)

COUNTERS = ("calls", "prompt_tokens", "completion_tokens", "cache_hits", "errors")


class Judge(Configured):
    name = "judge"
    option = "judge"

    @property
    def id(self) -> str:
        return f"{self.name}@{content_hash(self.describe())}"

    def preflight(self) -> None:
        """Check what the judge needs (a key, a server, a package) before any generation; nothing by default."""

    def judge(self, items: Sequence[tuple[Behavior, Completion]]) -> list[Verdict]:
        raise NotImplementedError

    def judge_records(self, items: Sequence[tuple[Behavior, Completion]]) -> list[Verdict]:
        """`judge`, except that a failed completion (finish_reason "error": an attack that could not build its
        request) gets an error verdict without the judge: every judge, keyword ones included, never labels it.
        What the run loop and rejudge call."""
        asked = [(b, c) for b, c in items if c.finish_reason != "error"]
        verdicts = iter(self.judge(asked) if asked else [])
        return [next(verdicts) if c.finish_reason != "error" else
                Verdict(harmful=None, judge=self.id, error=f"request failed: {c.text}") for _, c in items]

    def usage(self) -> dict[str, Any] | None:
        """Running totals of what judging cost (calls, tokens, ...); None for judges that call no model."""
        return None


class ModelJudgeSettings(Settings):
    """What every model-based judge takes: where its replies are cached (never part of its identity)."""

    cosmetic = frozenset({"cache_dir"})
    cache_dir: Path | None = None  # replies cached in <cache_dir>/judge/<name>.sqlite; None: in memory


class ModelJudge(Judge):
    """A judge that asks a model one prompt per item. Subclasses give `prompt`, `ask` and `verdict`."""

    Settings = ModelJudgeSettings

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        self.cache = ReplyCache(self.settings.cache_dir, self.name)
        self.totals = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()

    # --- what a subclass says -------------------------------------------------------------
    def prompt(self, behavior: Behavior, completion: Completion) -> str:
        raise NotImplementedError

    def ask(self, prompts: Mapping[str, str]) -> dict[str, str | Exception]:
        """prompt key -> the model's reply, or the exception that stopped it; counts calls and tokens."""
        raise NotImplementedError

    def parse(self, reply: str) -> Any:
        """The reply's answer, or None when it has none (then it is not cached)."""
        raise NotImplementedError

    def verdict(self, behavior: Behavior, reply: str) -> Verdict:
        raise NotImplementedError

    def judged_text(self, completion: Completion) -> str:
        """The text whose emptiness makes the verdict without a call."""
        return completion.request.prefill + completion.text

    def empty(self) -> Verdict:
        return Verdict(harmful=False, refused=True, judge=self.id, rationale="empty")

    def redact(self, text: str) -> str:
        """Text safe to put in a verdict or a log (a subclass removes secrets)."""
        return text

    # --- written once ---------------------------------------------------------------------
    def judge(self, items: Sequence[tuple[Behavior, Completion]]) -> list[Verdict]:
        judge_id = self.id
        verdicts: dict[int, Verdict] = {}
        keys: dict[int, str] = {}
        replies: dict[str, str | Exception] = {}
        todo: dict[str, str] = {}
        for i, (behavior, completion) in enumerate(items):
            if completion.finish_reason == "error":
                verdicts[i] = self.failed(f"the completion itself failed: {completion.text[:120]!r}")
                continue
            if not self.judged_text(completion).strip():
                verdicts[i] = self.empty()
                continue
            prompt = self.prompt(behavior, completion)
            key = keys[i] = content_hash([judge_id, prompt])
            if key in replies or key in todo:
                continue
            cached = self.cache.get(key)
            if cached is not None:
                replies[key] = cached
                self.count(cache_hits=1)
            else:
                todo[key] = prompt
        if todo:
            for key, reply in self.ask(todo).items():
                replies[key] = reply
                if isinstance(reply, str) and self.parse(reply) is not None:
                    self.cache.put(key, reply)
        for i, key in keys.items():
            reply = replies[key]
            if isinstance(reply, Exception):
                verdicts[i] = self.failed(f"{type(reply).__name__}: {self.redact(str(reply))[:200]}")
            else:
                verdicts[i] = self.verdict(items[i][0], reply)
        return [verdicts[i] for i in range(len(items))]

    def failed(self, reason: str) -> Verdict:
        self.count(errors=1)
        log.warning("%s judge: %s", self.name, reason)
        return Verdict(harmful=None, refused=None, judge=self.id, error=reason)

    def count(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                self.totals[name] += amount

    def usage(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.totals)
