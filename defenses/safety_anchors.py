"""Safety anchors: harmful request -> refusal examples that a fine-tuning provider mixes into
every user's data set (the "mix in safety data" mitigation, Qi et al. 2024; Bianchi et al. 2024).

Under plain SFT they are ordinary refusal examples. Under the token-wise constrained objective
they do more: the objective is one-sided (it stops pulling a token up once it is above the
reference, it never pushes one down), so when training on the attacker's later tokens leaks
into the first-token decision, the anchors' refusal prefixes fall below the reference and the
large early betas pull them back hard. The prompts come from a benchmark slice the attacker's
data does not use (HarmBench standard behaviors after the first 150 by default); any prompt
also in the user's data is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from harness.benchmark import Benchmark
from harness.errors import DataError
from harness.settings import Configured, Named, Settings
from harness.training.loop import Example
from harness.training.refusals import refusal_for
from harness.types import Message


class AnchorSettings(Settings):
    harmful: Annotated[Benchmark, Named] = Field(serialization_alias="anchors")  # where the anchor requests come from
    n: int = Field(50, ge=1)
    skip: int = Field(150, ge=0)  # behaviors skipped first (keeps anchors disjoint from a recipe's slice)


class SafetyAnchors(Configured):
    """A component of the fine-tuning-API defenses (defense.anchors), not a defense by itself."""

    name = "anchors"
    option = "defense.anchors"
    Settings = AnchorSettings

    def describe(self) -> dict[str, Any]:
        return self.settings.identity()

    def examples(self, exclude: Sequence[Example] = ()) -> list[Example]:
        taken = {m.content for e in exclude for m in e.messages if m.role == "user"}
        behaviors = self.harmful.load()[self.skip : self.skip + self.n]
        anchors = [Example(messages=(Message(role="user", content=b.query()),), response=refusal_for(b.id), kind="anchor")
                   for b in behaviors if b.query() not in taken]
        if not anchors:
            raise DataError(f"safety anchors: no {self.harmful.name} behaviors after skipping {self.skip} "
                            f"({len(self.harmful.load())} in all, or all already in the user's data); lower anchors.skip")
        return anchors

    def mix(self, examples: Sequence[Example]) -> list[Example]:
        """The user's examples followed by the anchors (the loop shuffles or length-groups them)."""
        return [*examples, *self.examples(exclude=examples)]
