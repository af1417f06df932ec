"""Explicit safety signals (Li & Kim, ICML 2025): a [CLS] classification token trained jointly
with the LM, re-evaluated during generation to steer decoding to a refusal.

`harden` trains the model (by default continuing from the standard aligned model, as the
safety-SFT recipe `aligned` builds it) with L_sft + lambda * L_cls through the shared training
loop (`defenses.safety_signal.objective`) and saves the head next to the weights. The data:

- refusal (label 1): harmful request -> a refusal that opens like the steering's inserted text
  ("Sorry, I cannot fulfill your request because ..."), LM-trained, so the model knows how to
  go on after the opening is inserted;
- harmful (label 1, classification only): harmful request + the unaligned base's own harmful
  answer; the head is trained on windows all along it (what a prefill attack shows it);
- utility (label 0): benign request -> the base's own answer, LM-trained;
- turn (classification only): benign request, the start of its benign answer, then a harmful
  answer: windows before the turn are benign, windows inside the harmful part malicious.

`wrap` returns the HF engine with safety-signal decoding (`defenses.safety_signal.decoding`);
with `steer: false` the trained model generates plainly (the LM-only effect of the joint
training). Every classifier decision is appended to `decisions_log` (JSON lines).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from defenses.safety_sft import SafetySFT, ask
from defenses.safety_signal.decoding import (
    REFUSAL,
    HeadClassifier,
    SafetySignalEngine,
    Steering,
)
from defenses.safety_signal.head import SafetyHead
from defenses.safety_signal.objective import TURN, SignalObjective
from harness.answers import sampled_answers
from harness.benchmark import Benchmark
from harness.defense import Defense
from harness.engine import Engine
from harness.engines.hf import HFEngine
from harness.errors import HarnessError
from harness.model import Model
from harness.refusals import refusal_for
from harness.settings import Named, Ref, Settings
from harness.training import Example, TrainKey, TrainSettings, train

log = logging.getLogger(__name__)

COUNTS = ("harmful_pool", "benign_pool", "n_refusal", "n_harmful", "n_utility", "n_turn")

# Refusals that start with the steering's inserted opening and give a reason.
BECAUSE = tuple(f"{REFUSAL} {reason}" for reason in (
    "it could cause serious harm to people.",
    "it asks for dangerous information that could be used to hurt others.",
    "it may be illegal and could put people at risk.",
    "helping with this could lead to real harm. If you have another question, I'm happy to help.",
    "it involves harming others, and I won't assist with that.",
    "the information could be misused to cause damage or injury.",
))


class SafetySignalSettings(Settings):
    # Where decisions are logged and the trained model's folder name cannot change a result.
    cosmetic = frozenset({"decisions_log", "suffix"})
    aligned: Annotated[SafetySFT | None, Ref] = None  # the recipe training continues from (and the benchmarks' source)
    harmful: Annotated[Benchmark | None, Named] = None  # default: the aligned recipe's
    benign: Annotated[Benchmark | None, Named] = None
    harmful_pool: int = Field(150, ge=0)
    benign_pool: int = Field(250, ge=0)
    n_refusal: int = Field(80, ge=0)
    n_harmful: int = Field(80, ge=0)
    n_utility: int = Field(120, ge=0)
    n_turn: int = Field(80, ge=0)
    answer_tokens: int = Field(128, ge=1)
    utility_tokens: int = Field(64, ge=1)
    turn_context: tuple[int, int] = (4, 40)  # benign answer tokens before the turn: low, high
    objective: dict[str, Any] = Field(default_factory=dict)  # SignalObjective settings (lam, window, offsets, ...)
    train: Annotated[TrainSettings, TrainKey] = TrainSettings()
    steer: bool = True  # false: the trained model generates plainly (no safety-signal decoding)
    steering: Steering = Steering()
    decisions_log: str | None = None
    suffix: str = "safety-signal"
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def benchmarks_from_aligned(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("aligned") is not None:
            aligned = values["aligned"]
            values = {**values, "harmful": values.get("harmful") or aligned.harmful,
                      "benign": values.get("benign") or aligned.benign}
        return values

    @model_validator(mode="after")
    def consistent(self) -> SafetySignalSettings:
        if self.harmful is None or self.benign is None:
            raise ValueError("defense=safety_signal needs harmful and benign benchmarks (defense.harmful / defense.benign), "
                             "or an aligned recipe (defense.aligned) to take them from")
        lo, hi = self.turn_context
        if not 1 <= lo <= hi:
            raise ValueError(f"defense.turn_context={list(self.turn_context)}: need 1 <= low <= high "
                             "(benign tokens before the turn)")
        SignalObjective(**{"seed": self.seed, **self.objective})  # validate now, not after the answers are sampled
        return self


class SafetySignal(Defense):
    name = "safety_signal"
    Settings = SafetySignalSettings

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        self.counts = {k: getattr(self.settings, k) for k in COUNTS}
        self.objective_settings = {"seed": self.seed, **self.objective}
        self.trained: Model | None = None

    def recipe(self) -> dict[str, Any]:
        """What the trained model depends on (its cache key): not the decoding settings."""
        return {"defense": self.name, "aligned": self.aligned.describe() if self.aligned else None,
                "harmful": self.harmful.name, "benign": self.benign.name, **self.counts, "answer_tokens": self.answer_tokens,
                "utility_tokens": self.utility_tokens, "turn_context": list(self.turn_context), "refusals": list(BECAUSE),
                "seed": self.seed, "train": self.train.key()}

    # --- training data ------------------------------------------------------------------
    def examples(self, model: Model) -> list[Example]:
        """The joint training set; harmful and benign answers are `model`'s own (the unaligned base)."""
        c = self.counts
        harmful = self.harmful.load()[: c["harmful_pool"]]
        benign = self.benign.load()[: c["benign_pool"]]
        bad = {k: a.text for k, a in sampled_answers(model, harmful, max_tokens=self.answer_tokens).items()}  # weight 0
        good = sampled_answers(model, benign, max_tokens=self.utility_tokens)
        rng = random.Random(f"safety-signal-{self.seed}")
        refusal = [Example(messages=ask(b), response=refusal_for(b.id, BECAUSE), kind="refusal", label=1)
                   for b in harmful[: c["n_refusal"]]]
        answered = [b for b in harmful if b.id in bad]
        if len(answered) < min(c["n_harmful"], 1) or (c["n_turn"] and not answered):
            raise HarnessError(f"defense=safety_signal: {model.name} answered only {len(answered)} of {len(harmful)} harmful "
                               "prompts; the head needs harmful answers (train from an unaligned base model)")
        harmful_ex = [Example(messages=ask(b), response=bad[b.id], weight=0.0, kind="harmful", label=1)
                      for b in answered[: c["n_harmful"]]]
        helpful = [b for b in benign if b.id in good]
        utility = [good[b.id].example(ask(b), kind="utility", label=0) for b in helpful[: c["n_utility"]]]
        tok = model.tokenizer
        turn = []
        sources = helpful[c["n_utility"]:] or helpful
        for i in range(c["n_turn"] if sources else 0):
            b = sources[i % len(sources)]
            ids = tok(good[b.id].text, add_special_tokens=False).input_ids
            k = min(rng.randint(*self.turn_context), max(len(ids) - 1, 1))
            h = answered[rng.randrange(len(answered))]
            turn.append(Example(messages=ask(b), prefix=tok.decode(ids[:k]), response=" " + bad[h.id], weight=0.0,
                                kind=TURN, label=1))
        out = refusal + harmful_ex + utility + turn
        log.info("safety_signal data: %d refusal, %d harmful, %d utility, %d turn examples",
                 len(refusal), len(harmful_ex), len(utility), len(turn))
        return out

    # --- the defense --------------------------------------------------------------------
    def harden(self, model: Model) -> Model:
        start = self.aligned.harden(model) if self.aligned else model
        objective = SignalObjective(**self.objective_settings)
        self.trained = train(start, self.examples(model), self.train, objective=objective,
                             name=f"{model.name}-{self.suffix}", recipe=self.recipe())
        return self.trained

    def head_folder(self, model: Model) -> Path:
        """Where the head is: next to the weights, else (a model fine-tuned after hardening) the hardened model's."""
        for candidate in (model, self.trained):
            if candidate is not None and SafetyHead.exists(candidate.folder):
                return candidate.folder
        raise HarnessError(f"defense=safety_signal: no safety-signal head next to {model.name}'s weights ({model.folder}); "
                           "the model must come from this defense's harden() (or set defense.steer=false)")

    def evasion_cost(self):
        """Adaptive attacks (GCG): how far the head's p(malicious) at the first check (the prompt, before any
        token is generated) is above the steering threshold less a margin of 0.05 (0 once it would pass)."""
        if not self.steer:
            return None
        model = self.trained
        if model is None:
            raise HarnessError("defense=safety_signal: an adaptive attack needs the hardened model; harden() first")
        head = SafetyHead.load(self.head_folder(model), device=model.hf.device, dtype=model.hf.dtype)
        threshold = self.steering.threshold

        def cost(texts, margin: float = 0.05) -> list[float]:
            return [max(0.0, p - threshold + margin) for p in first_check(model, head, texts)]

        return cost

    def wrap(self, engine: Engine) -> Engine:
        if not self.steer:
            return engine
        if not isinstance(engine, HFEngine):
            raise HarnessError(f"defense=safety_signal steers decoding inside the transformers engine; use engine=hf "
                               f"(got engine={engine.name})")
        model = engine.model
        folder = self.head_folder(model)
        head = SafetyHead.load(folder, device=model.hf.device, dtype=model.hf.dtype)
        return SafetySignalEngine(model, HeadClassifier(head, source=str(folder)), self.steering,
                                  batch_size=engine.batch_size, progress=engine.progress, decisions_log=self.decisions_log)


def first_check(model: Model, head: SafetyHead, texts) -> list[float]:
    """p(malicious) the head gives at step 0 for each user text: the [CLS] right after the rendered prompt."""
    import torch

    from harness.types import Message

    hf = model.hf
    out = []
    with torch.inference_mode():
        for text in texts:
            ids = torch.tensor([model.prompt_ids((Message(role="user", content=text),))], device=hf.device)
            embeds = hf.get_input_embeddings()(ids)
            inputs = torch.cat([embeds, head.cls_inputs(1, 1, embeds)], dim=1)
            hidden = hf.get_decoder()(inputs_embeds=inputs).last_hidden_state
            out.append(float(head.p_malicious(hidden[:, -1])[0]))
    return out
