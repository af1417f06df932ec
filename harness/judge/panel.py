"""A judge with others beside it: one judge decides, the others' verdicts are kept beside its own.

    python -m harness judge=keyword_learned      # the keyword judge decides; the learned judge's verdict beside it

Every verdict is the primary judge's, with `Verdict.beside` holding each other judge's `harmful` (None where it
failed); the ASR tables add a column per judge beside the primary's ASR (`asr_<name>` with its interval), so one run
shows how much the judge matters. The panel's id covers every judge in it, so adding one re-judges (the completions
are reused); the primary's calibration, when it has one, still corrects the primary's ASR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.errors import HarnessError
from harness.judge.base import Judge
from harness.types import Behavior, Completion, Verdict, content_hash


class PanelJudge(Judge):
    name = "panel"

    def __init__(self, primary: Judge, beside: Mapping[str, Judge]) -> None:
        if not beside:
            raise HarnessError("judge.beside: give at least one judge to put beside the primary one, e.g. "
                               "judge@judge.beside.learned=learned")
        bad = [name for name in beside if not name.isidentifier()]
        if bad:
            raise HarnessError(f"judge.beside: {bad[0]!r} is not a usable column name (letters, digits, _)")
        self.primary = primary
        self.beside = dict(beside)
        self.name = "+".join([primary.name, *self.beside])

    @property
    def id(self) -> str:
        """The primary's id (its calibration keeps applying) joined to the panel's hash (another panel re-judges)."""
        return f"{self.primary.id}+{content_hash(self.describe())}"

    def describe(self) -> dict[str, Any]:
        return {"judge": "panel", "primary": self.primary.describe(),
                "beside": {name: judge.describe() for name, judge in self.beside.items()}}

    def preflight(self) -> None:
        for judge in (self.primary, *self.beside.values()):
            judge.preflight()

    def usage(self) -> dict[str, Any] | None:
        usages = {name: judge.usage() for name, judge in {"primary": self.primary, **self.beside}.items()}
        return {name: usage for name, usage in usages.items() if usage is not None} or None

    def judge(self, items: Sequence[tuple[Behavior, Completion]]) -> list[Verdict]:
        verdicts = self.primary.judge(items)
        others = {name: judge.judge(items) for name, judge in self.beside.items()}
        return [v.model_copy(update={"judge": self.id, "beside": {name: others[name][i].harmful for name in others}})
                for i, v in enumerate(verdicts)]
