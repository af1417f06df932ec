"""Circuit breakers by representation rerouting (Zou et al. 2024, "Improving Alignment and Robustness
with Circuit Breakers"): a training defense.

The data are deep alignment's (defenses/deep_alignment.py): the aligned recipe's harmful training
prompts with the unaligned base's own answers to them (`sample_answers`, `answer_tokens` long; the
same cached answers), and the aligned recipe's utility anchors (benign request -> the base's answer,
the first `n_utility`). Harmful (request, answer) pairs are rerouted; the utility anchors, and with
`refusals` the aligned recipe's plain refusal examples (harmful request -> refusal: the paper's
Llama-3 retain set holds refusal data too), are retained (defenses/circuit_breakers/objective.py).

As deep alignment does, training starts from the standard aligned model (the `aligned` recipe), and
that model is the frozen original the representations are compared with. The paper's recipe is
LoRA (rank 16, alpha 16, on the layers up to the deepest rerouted one) with the loss on layers
10 and 20 (of 32); conf/defense/circuit_breakers.yaml scales it to the embedded model and trains all
weights of those layers instead (LoRA did not reroute there; `train.lora` brings it back).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from defenses.circuit_breakers.objective import HARMFUL, RerouteObjective, check_layers
from defenses.safety_sft import SafetySFT, ask
from harness.defense import Defense
from harness.errors import HarnessError
from harness.model.base import Model
from harness.settings import Ref, Settings
from harness.training.answers import sampled_answers
from harness.training.loop import Example, TrainKey, TrainSettings, train


class CircuitBreakersSettings(Settings):
    cosmetic = frozenset({"suffix"})
    aligned: Annotated[SafetySFT | None, Ref]  # the recipe of the model training starts from, and its data
    layers: tuple[Annotated[int, Field(ge=1)], ...] = Field((10, 20), min_length=1)  # rerouted: the stream after layer l
    alpha: float = Field(10.0, gt=0)  # the schedule's scale: c_rr = alpha (1 - t/2T), c_retain = alpha t/2T
    answer_tokens: int = Field(128, ge=1)  # harmful answers of the base (deep alignment's: the same cache)
    n_utility: int | None = Field(100, ge=0)  # utility anchors retained (the aligned recipe's, first n; null: all)
    refusals: bool = True  # also retain the aligned recipe's refusal examples (harmful request -> refusal)
    train: Annotated[TrainSettings, TrainKey] = TrainSettings(epochs=1)  # full fine-tuning; lora= for LoRA
    suffix: str = "circuit-breakers"


class CircuitBreakers(Defense):
    name = "circuit_breakers"
    Settings = CircuitBreakersSettings

    def all_training_prompts(self) -> list[str]:
        """The aligned recipe's user turns (rerouting adds answers, not prompts)."""
        return self.aligned.all_training_prompts() if self.aligned else []

    def objective(self) -> RerouteObjective:
        return RerouteObjective(self.layers, self.alpha, self.train)

    def examples(self, model: Model) -> list[Example]:
        """Harmful (request, base answer) pairs to reroute, then the retain set. `model` is the unaligned base."""
        harmful = self.aligned.training_prompts()
        answers = sampled_answers(model, harmful, max_tokens=self.answer_tokens)  # the unaligned base complies
        rerouted = [answers[b.id].example(ask(b), kind=HARMFUL) for b in harmful if b.id in answers]
        if not rerouted:
            raise HarnessError(f"defense=circuit_breakers: no harmful answers to reroute ({len(harmful)} harmful prompts "
                               f"in defense.aligned.harmful, {model.name} answered none of them without refusing)")
        retained = self.aligned.utility_examples(model)[: self.n_utility]
        if self.refusals:
            retained += [e for e in self.aligned.refusal_examples() if e.kind == "refusal"]
        return rerouted + retained

    def harden(self, model: Model) -> Model:
        if self.aligned is None:
            raise HarnessError("defense=circuit_breakers needs defense.aligned (the recipe of the model it starts from)")
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model.folder, trust_remote_code=model.trust_remote_code)
        check_layers(self.layers, config.num_hidden_layers)  # before anything is sampled or trained
        examples = self.examples(model)
        start = self.aligned.harden(model)
        return train(start, examples, self.train, self.objective(), name=f"{model.name}-{self.suffix}",
                     recipe=self.describe())
