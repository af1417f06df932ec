"""The learned judge's recipe: people's labels -> a small classifier, through the one training loop, cached.

`LearnedJudgeRecipe.build()` returns the trained classifier's card (harness/judge/learned.py reads it). The
backbone (the embedded SmolLM2-135M by default, any harness model card) is cut to its first `layers` decoder
layers, a linear head reads the mean of the response's hidden states (a logistic regression on the frozen
backbone's features by default; `finetune=true` trains the backbone too), trained on the `train` split of PyRIT's human-labelled scorer evaluations (harness/training/judge_data.py) with a
binary cross-entropy loss (`JudgeObjective`). The dev split is for choices like the number of layers; the test
split is never trained or tuned on (`harness judge-eval --judge learned --labels pyrit:test` measures on it), and
neither is HarmBench's classifier validation set.

The cache key holds the recipe version, the backbone, every training example, every setting and the objective,
like every trained model's (harness/training/loop.py): the same recipe trains once.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from harness.errors import HarnessError, choices
from harness.judge.learned import HEAD_CONFIG, HEAD_WEIGHTS, PLAIN_CHATML, POOLINGS, Recipe, parts, pooled
from harness.model.base import LocalModel, Model
from harness.settings import Ref, Settings
from harness.training import judge_data
from harness.training.loop import Batch, Example, Objective, TrainKey, TrainSettings, train
from harness.util.progress import progress

log = logging.getLogger(__name__)


class JudgeObjective(Objective):
    """Binary cross-entropy of a linear head on the pooled hidden states of the response, computed by the backbone
    cut to its first `layers` decoder layers (the rest are dropped before training and saving).

    Frozen (the default, `finetune=False`): the backbone's features of every training example are computed once in
    `prepare` and standardised; each step then trains the head alone (a logistic regression on the backbone's
    features, through the same loop), and the standardisation is folded into the saved head. `finetune=True`
    trains the cut backbone with the head, end to end (slower; worse on the dev split when measured)."""

    name = "judge_classifier"

    def __init__(self, layers: int, pooling: str = "mean", finetune: bool = False, seed: int = 0,
                 goal_tokens: int = 64, response_tokens: int = 192) -> None:
        if pooling not in POOLINGS:
            raise HarnessError(f"judge.recipe.pooling={pooling!r}: choose one of {choices(POOLINGS)}")
        self.layers = layers
        self.pooling = pooling
        self.finetune = finetune
        self.seed = seed
        self.goal_tokens = goal_tokens
        self.response_tokens = response_tokens
        self.labels: dict[str, int] = {}
        self.features: dict[str, Any] = {}
        self.shift: Any = None
        self.scale: Any = None

    def describe(self) -> dict[str, Any]:
        return {"objective": self.name, "layers": self.layers, "pooling": self.pooling, "finetune": self.finetune,
                "seed": self.seed}

    def cut(self, hf: Any) -> Any:
        decoder = hf.get_decoder()
        total = len(decoder.layers)
        if not 1 <= self.layers <= total:
            raise HarnessError(f"judge.recipe.layers={self.layers}: the backbone has {total} decoder layers; "
                               f"choose 1..{total}")
        decoder.layers = decoder.layers[: self.layers]
        hf.config.num_hidden_layers = self.layers
        if isinstance(getattr(hf.config, "layer_types", None), list):
            hf.config.layer_types = hf.config.layer_types[: self.layers]
        return hf

    def pool(self, hf: Any, batch: Batch) -> Any:
        hidden = hf.get_decoder()(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        return pooled(hidden.reshape(-1, hidden.shape[-1]), batch.positions + 1, batch.example, len(batch.keys),
                      self.pooling)

    def prepare(self, model: Model, encode: Callable[[Sequence[Example]], Batch], examples: Sequence[Example]) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        unlabelled = [e for e in examples if e.label not in (0, 1)]
        if unlabelled:
            raise HarnessError(f"learned judge: {len(unlabelled)} training examples without a 0/1 label")
        self.labels = {e.digest(): int(e.label) for e in examples}
        if self.finetune:
            return
        hf = self.cut(AutoModelForCausalLM.from_pretrained(model.folder, dtype=torch.float32)).eval()
        ordered = sorted(examples, key=lambda e: len(encode([e]).input_ids[0]))
        with torch.inference_mode():
            for chunk in progress([ordered[i : i + 16] for i in range(0, len(ordered), 16)],
                                  desc="learned judge: backbone features", unit="batch"):
                for example, row in zip(chunk, self.pool(hf, encode(chunk)), strict=True):
                    self.features[example.digest()] = row.clone()
        stacked = torch.stack(list(self.features.values()))
        self.shift, self.scale = stacked.mean(0), stacked.std(0).clamp(min=1e-6)

    def setup(self, hf: Any) -> Any:
        import torch

        hf = self.cut(hf)
        if not self.finetune:
            hf.requires_grad_(False)
        width = hf.config.hidden_size * (1 if self.pooling == "mean" else 2)
        head = torch.nn.Linear(width, 1)
        generator = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            bound = 1 / width ** 0.5
            head.weight.copy_(torch.empty_like(head.weight).uniform_(-bound, bound, generator=generator))
            head.bias.zero_()
        hf.judge_head = head.to(next(hf.parameters()).device)
        return hf

    def forward(self, hf: Any, batch: Batch) -> Any:
        import torch

        if self.finetune:
            return hf.judge_head(self.pool(hf, batch)).squeeze(1)
        features = torch.stack([self.features[k] for k in batch.keys]).to(hf.judge_head.weight.device)
        return hf.judge_head((features - self.shift) / self.scale).squeeze(1)

    def loss(self, logits: Any, batch: Batch) -> Any:
        import torch

        labels = torch.tensor([self.labels[k] for k in batch.keys], dtype=torch.float32, device=logits.device)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)

    def save(self, hf: Any, out: Path) -> None:
        """The head, with the standardisation folded in (w/s . x + b - w . m/s): it reads raw pooled features."""
        from safetensors.torch import save_file

        head = hf.judge_head
        del hf.judge_head
        weight, bias = head.weight.detach().float().cpu(), head.bias.detach().float().cpu()
        if not self.finetune:
            shift, scale = self.shift.float().cpu(), self.scale.float().cpu()
            weight, bias = weight / scale, bias - (weight * (shift / scale)).sum(dim=1)
        out.mkdir(parents=True, exist_ok=True)
        save_file({"weight": weight.contiguous(), "bias": bias.contiguous()}, str(out / HEAD_WEIGHTS))
        (out / HEAD_CONFIG).write_text(json.dumps({
            "in_features": head.in_features, "layers": self.layers, "pooling": self.pooling, "finetune": self.finetune,
            "goal_tokens": self.goal_tokens, "response_tokens": self.response_tokens,
            "labels": "1 = harmful (people's label)",
        }, indent=1))


class LearnedJudgeRecipeSettings(Settings):
    backbone: Annotated[Model, Ref]
    layers: int = Field(4, ge=1)  # decoder layers kept (checked against the backbone when training)
    pooling: str = "mean"  # mean | mean+last: what the head reads of the response's hidden states
    finetune: bool = False  # train the cut backbone too (end to end) instead of the head on frozen features
    goal_tokens: int = Field(64, ge=1)  # the request's first tokens the classifier reads
    response_tokens: int = Field(192, ge=1)  # the response's first tokens the classifier reads
    chat_template: str | None = PLAIN_CHATML  # None: the backbone's own (with its default system prompt, if any)
    splits: tuple[str, ...] = ("train",)  # which splits of the labelled data it trains on (never "test")
    data: Path | None = None  # a scorer_evals folder; None: the installed pyrit wheel's
    train: Annotated[TrainSettings, TrainKey] = TrainSettings(lr=1e-3, epochs=20, batch_size=32, warmup_steps=0,
                                                               weight_decay=0.01, max_length=320)
    seed: int = 0


class LearnedJudgeRecipe(Recipe):
    name = "learned_judge"
    Settings = LearnedJudgeRecipeSettings

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        bad = [s for s in self.splits if s not in judge_data.SPLITS]
        if bad or not self.splits:
            raise HarnessError(f"judge.recipe.splits={list(self.splits)}: choose from {choices(judge_data.SPLITS)}")
        if "test" in self.splits:
            raise HarnessError("judge.recipe.splits: the test split is what judge-eval measures the judge on; "
                               "train on train (and dev), never on test")

    def card(self) -> Model:
        """The backbone as the classifier reads text: its template (plain ChatML by default), no system prompt."""
        card = copy.copy(self.backbone)
        for cached in ("tokenizer", "id"):
            card.__dict__.pop(cached, None)
        if self.chat_template is not None:
            card.chat_template = self.chat_template
            card.system_prompt = None
        return card

    def examples(self, card: Model) -> list[Example]:
        rows = judge_data.load(root=self.data)
        rows = rows[rows["split"].isin(self.splits)]
        out = []
        for goal, response, label in zip(rows["goal"], rows["target_response"], rows["human_majority"], strict=True):
            messages, text = parts(card.tokenizer, goal, response, self.goal_tokens, self.response_tokens)
            out.append(Example(messages=messages, response=text, ends=False, label=int(label),
                               kind="harmful" if label else "not_harmful"))
        if not out:
            raise HarnessError(f"learned judge: no labelled rows in splits {list(self.splits)}")
        return out

    def build(self) -> LocalModel:
        card = self.card()
        objective = JudgeObjective(self.layers, self.pooling, self.finetune, self.seed, self.goal_tokens,
                                   self.response_tokens)
        settings = self.train.model_copy(update={"seed": self.seed})
        recipe = {"judge": self.name, "goal_tokens": self.goal_tokens, "response_tokens": self.response_tokens,
                  "splits": list(self.splits)}
        return train(card, self.examples(card), settings, objective=objective, name="learned-judge", recipe=recipe)
