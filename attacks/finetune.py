"""Fine-tuning attacks (Qi et al. 2024; 2025): a few gradient steps on the attacker's data.

`tamper` fine-tunes the target through the harness's one training loop with the objective
the defense's fine-tuning API imposes (plain SFT, or the token-wise constrained objective
under defense=constrained_sft); the result is cached like every trained model. Evaluation
then runs a prompt-level attack (`then`, direct by default) on the fine-tuned model, shaped
by the data set (a backdoor's trigger, an identity's system prompt).

`step` evaluates an intermediate checkpoint instead of the final model: list the steps in
`train.save_steps` and sweep `attack.step=2,4,6` for ASR as a function of fine-tuning steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field, model_validator

from attacks.direct import DirectAttack
from attacks.finetune_data.base import FinetuneSet
from harness.attack import Attack
from harness.defense import Defense
from harness.model.base import Model
from harness.settings import Ref, Settings
from harness.training.loop import Objective, TrainKey, TrainSettings, checkpoint, train
from harness.types import Behavior, Request, Sampling


class FinetuneSettings(Settings):
    data: Annotated[FinetuneSet, Ref]  # the attacker's data set (attack/data=...)
    train: Annotated[TrainSettings, TrainKey] = TrainSettings()
    then: Annotated[Attack, Ref] = Field(default_factory=DirectAttack)  # the prompt-level attack afterwards
    step: int | None = None  # evaluate this checkpoint (must be in train.save_steps); null = the final model

    @model_validator(mode="after")
    def saved_step(self) -> FinetuneSettings:
        if self.step is not None and self.step not in self.train.save_steps:
            raise ValueError(f"attack.step={self.step}: no checkpoint is saved there; "
                             f"train.save_steps={list(self.train.save_steps)} (add {self.step} to it)")
        return self


class FinetuneAttack(Attack):
    Settings = FinetuneSettings

    def __init__(self, *args: Any, train_overrides: dict[str, Any] | None = None, **values: Any) -> None:
        """`train_overrides` update `train` (experiments share one `train` and adjust it per attack)."""
        if train_overrides:
            values["train"] = {**dict(values.get("train") or {}), **train_overrides}
        super().__init__(*args, **values)
        self.name = f"finetune-{self.data.name}"

    def recipe(self) -> dict[str, Any]:
        """What the fine-tuned weights depend on (not the step evaluated)."""
        return {"attack": "finetune", **self.data.describe(), "train": self.train.key()}

    def tamper(self, model: Model, defense: Defense | None = None) -> Model:
        objective = defense.fine_tuning_objective() if defense else Objective()
        examples = self.data.examples(model)
        mixed = defense.fine_tuning_data(examples) if defense else examples
        tag = ("" if objective.name == "sft" else f"-{objective.name}") + ("-anchored" if mixed != examples else "")
        tuned = train(model, mixed, self.train, objective,
                      name=f"{model.name}-ft-{self.data.name}{tag}", recipe=self.recipe())
        return checkpoint(tuned, self.step) if self.step is not None else tuned

    def requests(self, behaviors: Sequence[Behavior], model: Model, sampling: Sampling) -> list[Request]:
        out = []
        for request in self.then.requests(behaviors, model, sampling):
            for params, messages in self.data.variants(request.messages):
                extra = {"step": self.step} if self.step is not None else {}
                out.append(request.model_copy(update={
                    "messages": messages, "attack": self.name,
                    "params": {**request.params, **params, **extra, "then": request.attack}}))
        return out
