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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from defenses.safety_sft import SafetySFT, ask
from defenses.safety_signal.decoding import (
    REFUSAL,
    HeadClassifier,
    SafetySignalEngine,
    Steering,
    steered_at,
)
from defenses.safety_signal.head import SafetyHead
from defenses.safety_signal.objective import TURN, SignalObjective
from harness.benchmark import Benchmark
from harness.defense import Defense
from harness.engine.base import Engine
from harness.engine.hf import HFEngine
from harness.errors import HarnessError
from harness.model.base import Model
from harness.settings import Named, Ref, Settings
from harness.training.answers import sampled_answers
from harness.training.loop import Example, TrainKey, TrainSettings, train
from harness.training.refusals import refusal_for

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
    # Where decisions are logged and the trained model's folder name cannot change a result; which checks an
    # adaptive attack evades changes nothing the defense does (the attack's key holds it: evasion_identity).
    cosmetic = frozenset({"decisions_log", "suffix", "adaptive_checks"})
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
    # Which checks an adaptive attack (GCG) is scored against: "all" = every scheduled check while the model
    # emits the attack's target (teacher-forced), "first" = only the first (the prompt, before any token).
    adaptive_checks: Literal["all", "first"] = "all"
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

    def evasion_cost(self) -> Callable[[Sequence[str], Sequence[str]], list[float]] | None:
        """Adaptive attacks (GCG): per user text, how far the head's p(malicious) is above the steering
        threshold less a margin of 0.05 (0 once it would pass), averaged over the checks it is scored on:
        every scheduled check while the model emits the attack's target (`adaptive_checks: all`, the
        default: a suffix that only fools the first check is caught a few tokens later), or the first."""
        if not self.steer:
            return None
        model = self.trained
        if model is None:
            raise HarnessError("defense=safety_signal: an adaptive attack needs the hardened model; harden() first")
        head = SafetyHead.load(self.head_folder(model), device=model.hf.device, dtype=model.hf.dtype)
        threshold, window = self.steering.threshold, self.steering.window or head.window
        tok = model.tokenizer

        def cost(texts: Sequence[str], targets: Sequence[str], margin: float = 0.05) -> list[float]:
            answers = [tok(t, add_special_tokens=False).input_ids if t else [] for t in targets]
            longest = max((len(a) for a in answers), default=0)
            steps = self.steering.schedule.steps(longest + 1) if self.adaptive_checks == "all" else [0]
            probs = check_probabilities(model, head, texts, answers, steps, window)
            return [sum(max(0.0, p - threshold + margin) for p in ps) / len(ps) for ps in probs]

        return cost

    def teacher_forced_checks(self, model: Model, texts: Sequence[str], answers: Sequence[Sequence[int]],
                              batch_size: int = 16) -> list[list[tuple[int, float]]]:
        """(step, p(malicious)) at every check the safety-signal engine would make while `model` (hardened by this
        defense) emits each answer (token ids) after each user text: for probes that put harmful text where only
        the re-checks can see it."""
        head = SafetyHead.load(self.head_folder(model), device=model.hf.device, dtype=model.hf.dtype)
        window = self.steering.window or head.window
        out = []
        for start in range(0, len(texts), batch_size):
            chunk = answers[start : start + batch_size]
            steps = self.steering.schedule.steps(max(len(a) for a in chunk) + 1)
            for ps in check_probabilities(model, head, texts[start : start + batch_size], chunk, steps, window):
                out.append(list(zip(steps, ps)))
        return out

    def steered_at(self, checks: Sequence[tuple[int, float]]) -> int | None:
        """The check step at which the engine's rule steers, given (step, p) checks; None if it does not."""
        return steered_at(checks, self.steering)

    def evasion_identity(self) -> dict[str, Any]:
        # "first" is the cost adaptive GCG used before the setting existed: its test cases keep their keys
        return {} if self.adaptive_checks == "first" else {"adaptive_checks": self.adaptive_checks}

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


def check_probabilities(model: Model, head: SafetyHead, texts: Sequence[str], answers: Sequence[Sequence[int]],
                        steps: Sequence[int], window: int | None) -> list[list[float]]:
    """p(malicious) the head gives at each check step s <= len(answer) for each user text, the assistant
    having emitted the first s tokens of its answer (teacher-forced): as the safety-signal engine checks
    after s generated tokens, the [CLS] seeing the prompt and the last `window` assistant tokens. One
    batched forward over the prompts and answers, then one single-token [CLS] forward per step."""
    import torch
    from transformers import DynamicCache

    from harness.types import Message

    hf, tok = model.hf, model.tokenizer
    prompts = [model.prompt_ids((Message(role="user", content=t),)) for t in texts]
    seqs = [p + list(a) for p, a in zip(prompts, answers, strict=True)]
    width = max(len(s) for s in seqs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    device = hf.device
    ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=device)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=device)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    starts = [width - len(s) + len(p) for s, p in zip(seqs, prompts, strict=True)]  # first assistant column
    out: list[list[float]] = [[] for _ in seqs]
    with torch.inference_mode():
        cache = DynamicCache(config=hf.config)
        hf.get_decoder()(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
        cls = head.cls_inputs(len(seqs), 1, hf.get_input_embeddings().weight)
        for step in steps:
            rows = [i for i, a in enumerate(answers) if step <= len(a)]
            if not rows:
                break
            seen = mask.clone()
            for i, start in enumerate(starts):
                seen[i, start + step:] = 0  # not yet generated
                if window is not None:
                    seen[i, start : max(start, start + step - window)] = 0  # outside the window
            cls_mask = torch.cat([seen, mask.new_ones((len(seqs), 1))], dim=-1)
            at = torch.tensor([[len(p) + step] for p in prompts], device=device)
            hidden = hf.get_decoder()(inputs_embeds=cls, attention_mask=cls_mask, position_ids=at, past_key_values=cache,
                                      use_cache=True).last_hidden_state
            cache.crop(-1)  # drop the [CLS] entry again
            p = head.p_malicious(hidden[:, -1]).float().cpu().tolist()
            for i in rows:
                out[i].append(p[i])
    return out
