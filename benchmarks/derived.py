"""Prompts derived from another benchmark by the safety SFT's templates: dev sets for tuning a recipe.

    benchmark=derived benchmark.kind=writing   # harmless writing tasks on HarmBench val's topics

`kind` picks the transform (`defenses/safety_phrasings.py`): `rephrased` (other phrasings of each
harmful request: questions, "ways to ...", role-play and fiction wrappers; harmful),
`contrast` (a harmless question on the same topic), `writing` (a harmless story, essay or report
on the same topic), `handwritten` (the hand-written safe look-alikes from `start` on, the ones a
recipe with `safe_lookalikes <= start` never trains on), and two hand-written sets from
`dev_prompts.py` that need no source: `borderline` (benign prompts that look alarming) and `blunt`
(blunt harmful requests; harmful). On benign sets the share answered is what they measure.
Derived from a benchmark that a recipe does not train on (by
default HarmBench's val split; the recipes train on its test split), they are for tuning only:
their templates are the recipe's own, so they are easier than a held-out set.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from benchmarks.dev_prompts import BLUNT_DEV, BORDERLINE_DEV
from defenses.safety_phrasings import SAFE_LOOKALIKES, lookalike, rephrase, writing_lookalike
from harness.benchmark import Benchmark, BenchmarkSettings
from harness.errors import DataError
from harness.settings import Ref
from harness.types import Behavior

KINDS = ("rephrased", "contrast", "writing", "handwritten", "borderline", "blunt")
HANDWRITTEN = {"borderline": BORDERLINE_DEV, "blunt": BLUNT_DEV}  # dev sets that need no source benchmark


class DerivedSettings(BenchmarkSettings):
    source: Annotated[Benchmark | None, Ref] = None  # the benchmark whose behaviors are transformed (not for handwritten)
    kind: Literal["rephrased", "contrast", "writing", "handwritten", "borderline", "blunt"] = "writing"
    start: int = Field(30, ge=0, le=len(SAFE_LOOKALIKES))  # handwritten: the look-alikes from this index on
    hub: bool = False


class Derived(Benchmark):
    name = "derived"
    Settings = DerivedSettings

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        self.name = f"{self.settings.kind}" + (f"_{self.source.name}" if self.source is not None else "")
        self.label = "harmful" if self.kind in ("rephrased", "blunt") else "benign"

    def derive(self) -> list[Behavior]:
        if self.kind == "handwritten":
            return [Behavior(id=f"safe-lookalike-{i}", prompt=p, label="benign", source=self.name)
                    for i, p in enumerate(SAFE_LOOKALIKES) if i >= self.start]
        if self.kind in HANDWRITTEN:
            return [Behavior(id=f"{self.kind}-dev-{i}", prompt=p, label=self.label, source=self.name)
                    for i, p in enumerate(HANDWRITTEN[self.kind])]
        if self.source is None:
            raise DataError(f"benchmark {self.name!r}: kind={self.kind} needs benchmark.source=<a benchmark config>")
        out = []
        for b in self.source.load():
            if self.kind == "rephrased":
                # one other phrasing per behavior, drawn with a salt no recipe uses (the recipe's own come first)
                q = rephrase(b.model_copy(update={"id": f"{b.id}:dev"}), 1)[0]
                out.append(b.model_copy(update={"id": f"{b.id}:rephrased", "prompt": q, "context": "", "source": self.name}))
            else:
                make = lookalike if self.kind == "contrast" else writing_lookalike
                out.append(Behavior(id=f"{b.id}:{self.kind}", prompt=make(b), category=b.category, label="benign",
                                    source=self.name))
        return out

    def load(self) -> list[Behavior]:
        behaviors = self.select(self.derive())
        if not behaviors:
            raise DataError(f"benchmark {self.name!r}: no behaviors left after filtering ({self.describe_filters()})")
        return behaviors
