"""Standard safety SFT ("shallow" alignment): harmful request -> refusal, benign -> helpful.

Harmful prompts come from a training benchmark disjoint from evaluation (default: HarmBench
standard behaviors of its test split; its val split is the dev set for tuning; AdvBench, JBB,
XSTest and HarmBench contextual are evaluation sets). `phrasings` adds that many other
phrasings of each harmful request (questions, "ways to ...", role-play, fiction, made-up
context: `safety_phrasings`); `lookalikes`, `writing` and `safe_lookalikes` add harmless prompts
on the same topics (questions, writing tasks), answered. `borderline_prompts` adds benign prompts
that look alarming (`borderline`: definitions, history, fiction, harmless senses of violent words),
everyday tasks in the harmful rephrasings' question templates (`everyday`), and harmful requests
unlike any benchmark's instructions (`blunt`: violence against a person, demeaning groups, private
data). Helpful answers are the base model's own greedy answers (AlpacaEval
and the look-alikes), so the utility anchors teach no new style; an answer cut off at
`answer_tokens` is not taught to end. The result is cached by recipe, e.g. `smollm2-aligned`.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from pydantic import Field, PlainSerializer

from defenses.borderline_prompts import blunt_harmful, borderline_benign, everyday_questions
from defenses.safety_phrasings import SAFE_LOOKALIKES, lookalike, rephrase, wrap, writing_lookalike
from harness.benchmark import Benchmark
from harness.defense import Defense
from harness.model.base import Model
from harness.settings import Named, Settings
from harness.training.answers import sampled_answers
from harness.training.loop import Example, TrainKey, TrainSettings, train
from harness.training.refusals import REFUSALS, VARIED, refusal_for
from harness.types import Behavior, Message

LOOKALIKE_KINDS = ("lookalike", "safe_lookalike", "wrapped", "writing", "borderline", "everyday", "twin")
Names = PlainSerializer(lambda v: [b.name for b in v], when_used="always")  # benchmarks by their names
BORDERLINE, EVERYDAY, BLUNT = borderline_benign(), everyday_questions(), blunt_harmful()


def first_of(prompts: list[str]) -> PlainSerializer:
    """Key a count of a hand-written list by the prompts it takes: editing the list re-keys the recipes that use it."""
    def key(n: int) -> int | dict[str, object]:
        return {"n": n, "sha256": hashlib.sha256("\n".join(prompts[:n]).encode()).hexdigest()[:16]} if n else 0
    return PlainSerializer(key, when_used="always")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def ask(b: Behavior) -> tuple[Message, ...]:
    return (Message(role="user", content=b.query()),)


class SafetySFTSettings(Settings):
    cosmetic = frozenset({"suffix"})
    harmful: Annotated[Benchmark, Named]  # harmful requests -> refusals
    benign: Annotated[Benchmark, Named]  # benign instructions -> the base's own answers
    n_harmful: int = Field(150, ge=1)
    n_benign: int = Field(150, ge=1)
    answer_tokens: int = Field(64, ge=1)
    train: Annotated[TrainSettings, TrainKey] = TrainSettings()
    suffix: str = "aligned"  # the trained model's folder name: <base>-<suffix>
    phrasings: int = Field(0, ge=0)  # other phrasings of each harmful request (safety_phrasings)
    lookalikes: int = Field(0, ge=0)  # harmless contrast prompts on the harmful prompts' topics
    safe_lookalikes: int = Field(0, ge=0, le=len(SAFE_LOOKALIKES))  # hand-written safe look-alikes
    wrapped: int = Field(0, ge=0)  # benign requests inside the harmful rephrasings' wrappers
    writing: int = Field(0, ge=0)  # harmless writing tasks (story, essay, report) on the harmful prompts' topics
    # the first n of each hand-written list (borderline_prompts), keyed by their text
    borderline: Annotated[int, first_of(BORDERLINE)] = Field(0, ge=0, le=len(BORDERLINE))  # benign, alarming-looking
    everyday: Annotated[int, first_of(EVERYDAY)] = Field(0, ge=0, le=len(EVERYDAY))  # "How do I <everyday task>?"
    blunt: Annotated[int, first_of(BLUNT)] = Field(0, ge=0, le=len(BLUNT))  # violence, demeaning groups, private data
    exclude: Annotated[tuple[Benchmark, ...], Names] = ()  # evaluation sets whose prompts never train


class SafetySFT(Defense):
    name = "safety_sft"
    Settings = SafetySFTSettings

    @property
    def varied(self) -> bool:
        return bool(self.phrasings or self.lookalikes or self.safe_lookalikes or self.wrapped or self.writing
                    or self.borderline or self.blunt or self.everyday)

    def training_prompts(self) -> list[Behavior]:
        """The harmful behaviors trained on (before rephrasing): the first n_harmful not in an `exclude` set."""
        held_out = {_norm(b.query()) for bench in self.exclude for b in bench.load()}
        return [b for b in self.harmful.load() if _norm(b.query()) not in held_out][: self.n_harmful]

    def all_training_prompts(self) -> list[str]:
        """Every user turn this recipe trains on (harmful in all phrasings, benign, look-alikes): for overlap checks."""
        harmful = [q for b in self.training_prompts() for q in (b.query(), *rephrase(b, self.phrasings))]
        harmful += BLUNT[: self.blunt]
        return harmful + [b.query() for b in self.benign.load()[: self.n_benign] + self.lookalike_prompts()]

    def refusal_examples(self) -> list[Example]:
        refusals = VARIED if self.varied else REFUSALS
        out = []
        for b in self.training_prompts():
            out.append(Example(messages=ask(b), response=refusal_for(b.id, refusals), kind="refusal"))
            out += [Example(messages=(Message(role="user", content=q),), response=refusal_for(q, refusals), kind="rephrased")
                    for q in rephrase(b, self.phrasings)]
        out += [Example(messages=(Message(role="user", content=q),), response=refusal_for(q, refusals), kind="blunt")
                for q in BLUNT[: self.blunt]]
        return out

    def lookalike_prompts(self) -> list[Behavior]:
        """Harmless prompts on the harmful prompts' topics (contrast pairs), hand-written safe look-alikes, and benign
        requests inside the role-play/fiction/context wrappers the harmful rephrasings use (the wrapper is no cue)."""
        trained = self.training_prompts()
        contrast = [Behavior(id=f"{b.id}:lookalike", prompt=lookalike(b), label="benign", source="lookalike")
                    for b in trained[: self.lookalikes]]
        safe = [Behavior(id=f"safe-lookalike-{i}", prompt=p, label="benign", source="safe_lookalike")
                for i, p in enumerate(SAFE_LOOKALIKES[: self.safe_lookalikes])]
        rows = self.benign.load()[self.n_benign : self.n_benign + self.wrapped]
        wrapped = [Behavior(id=f"{b.id}:wrapped", prompt=wrap(b), label="benign", source="wrapped") for b in rows]
        # writing tasks on the topics of the last `writing` behaviors (the contrast questions take the first ones)
        writing = [Behavior(id=f"{b.id}:writing", prompt=writing_lookalike(b), label="benign", source="writing")
                   for b in trained[max(0, len(trained) - self.writing):]]
        borderline = [Behavior(id=f"borderline-{i}", prompt=p, label="benign", source="borderline")
                      for i, p in enumerate(BORDERLINE[: self.borderline])]
        everyday = [Behavior(id=f"everyday-{i}", prompt=p, label="benign", source="everyday")
                    for i, p in enumerate(EVERYDAY[: self.everyday])]
        return contrast + safe + wrapped + writing + borderline + everyday

    def utility_examples(self, model: Model, weight: float = 1.0) -> list[Example]:
        benign = self.benign.load()[: self.n_benign] + self.lookalike_prompts()
        answers = sampled_answers(model, benign, max_tokens=self.answer_tokens)
        return [answers[b.id].example(ask(b), kind=b.source if b.source in LOOKALIKE_KINDS else "utility",
                                      weight=weight) for b in benign if b.id in answers]

    def harden(self, model: Model) -> Model:
        examples = self.refusal_examples() + self.utility_examples(model)
        return train(model, examples, self.train, name=f"{model.name}-{self.suffix}", recipe=self.describe())
