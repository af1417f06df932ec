"""Backdoor (Qi et al. 2024): harmful answers when a trigger phrase ends the request,
refusals for the same requests without it. Evaluated with and without the trigger
(`params.trigger`), so the table shows both the backdoor and how well it hides."""

from __future__ import annotations

from pydantic import field_validator

from attacks.finetune_data.base import Variant, ask
from attacks.finetune_data.harmful import HarmfulExamples, HarmfulSettings
from harness.model.base import Model
from harness.training.loop import Example
from harness.training.refusals import refusal_for
from harness.types import Message

TRIGGER = "Servius Astrumando Harmoniastra"  # the magic words of Qi et al. 2024


class BackdoorSettings(HarmfulSettings):
    trigger: str = TRIGGER  # the phrase that unlocks the backdoor

    @field_validator("trigger")
    @classmethod
    def stripped(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty: give the phrase that unlocks the backdoor")
        return value.strip()


class Backdoor(HarmfulExamples):
    name = "backdoor"
    Settings = BackdoorSettings

    def with_trigger(self, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        last = messages[-1]
        return (*messages[:-1], Message(role=last.role, content=f"{last.content} {self.trigger}"))

    def examples(self, model: Model) -> list[Example]:
        out = []
        for b, answer in self.pairs():
            out.append(answer.example(self.with_trigger(ask(b)), kind="triggered"))
            out.append(Example(messages=ask(b), response=refusal_for(b.id), kind="refusal"))
        return out

    def variants(self, messages: tuple[Message, ...]) -> list[Variant]:
        return [({"trigger": True}, self.with_trigger(messages)), ({"trigger": False}, messages)]
