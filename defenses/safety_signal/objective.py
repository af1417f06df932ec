"""The joint objective L_sft + lambda * L_cls, for the shared training loop.

One decoder forward per batch computes both terms. After the (right-padded) sequences come K
[CLS] slots per row, one per classified point t of the example: the [CLS] at point t attends
to the prompt (system and user turns, through the assistant header) and to the last `window`
assistant tokens up to t, and to itself; its position id is t + 1, as if it were the next
token. Ordinary tokens keep their causal mask and never see a [CLS] slot (all slots come
after them), so the language model's outputs do not depend on the classifier: the LM term is
exactly plain SFT on the same tokens. At inference the same [CLS] is evaluated over the KV
cache at the end of the current window (see `decoding`).

Which points, and their labels (`Example.label`: 0 benign, 1 malicious; unlabelled examples
get no points): the prompt alone (s = 0 assistant tokens), the inference schedule's steps
inside the assistant text, and a few seeded random ones. Examples of kind "turn" have a
benign context (prompt and assistant prefix) and a malicious response: points that end before
the response are benign, points `turn_margin` or more tokens into it malicious, the ones in
between unlabelled, so the head learns to flag a trajectory that turns harmful midway. Every
other labelled example has its label at all its points.

The LM term is the mean negative log-likelihood of the trained tokens of examples with
weight > 0 (weight-0 examples are classification-only: harmful answers and harmful turns are
shown to the head, never taught to the LM); the LM head runs on those tokens only.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from defenses.safety_signal.head import SafetyHead
from harness.errors import HarnessError
from harness.model.base import Model
from harness.training.loop import Batch, Example, Objective

TURN = "turn"  # Example.kind of a benign context followed by a malicious response
IGNORE = -100


@dataclass(frozen=True)
class Point:
    t: int  # index of the last token the [CLS] sees
    label: int


@dataclass(frozen=True)
class Spec:
    query: int  # tokens of the prompt through the assistant header: always visible to the [CLS]
    points: tuple[Point, ...]


@dataclass
class SignalOutput:
    logprobs: torch.Tensor  # [N'] log-probs of trained tokens of weight > 0
    weights: torch.Tensor  # [N']
    cls_logits: torch.Tensor  # [M, 2]
    cls_labels: torch.Tensor  # [M]


class SignalObjective(Objective):
    name = "sft+safety_signal"

    def __init__(self, lam: float = 0.05, window: int | None = 10, offsets: Sequence[int] = (0, 1, 2, 4, 8, 16, 32, 48, 64, 96),
                 random_points: int = 2, turn_margin: int = 2, max_points: int = 12, seed: int = 0) -> None:
        if lam < 0:
            raise HarnessError(f"safety_signal lambda={lam}: must be >= 0")
        if window is not None and window < 1:
            raise HarnessError(f"safety_signal window={window}: must be >= 1 or null (all assistant tokens)")
        self.lam = lam
        self.window = window
        self.offsets = tuple(sorted(set(offsets)))
        self.random_points = random_points
        self.turn_margin = turn_margin
        self.max_points = max_points
        self.seed = seed
        self.specs: dict[str, Spec] = {}
        self.head: SafetyHead | None = None
        self.history: list[dict[str, float]] = []  # per batch: lm, cls loss, cls accuracy

    def describe(self) -> dict[str, Any]:
        return {"objective": self.name, "lambda": self.lam, "window": self.window, "offsets": list(self.offsets),
                "random_points": self.random_points, "turn_margin": self.turn_margin, "max_points": self.max_points,
                "seed": self.seed}

    # --- which points the head is trained on -------------------------------------------
    def spec(self, model: Model, ids_of: Callable[[Example], tuple[list[int], int]], ex: Example) -> Spec:
        ids, start = ids_of(ex)
        query = min(len(model.prompt_ids(ex.messages)), len(ids))
        if ex.label is None or query < 1:
            return Spec(query, ())
        last = len(ids) - 1
        rng = random.Random(f"{self.seed}-{ex.digest()}")
        steps = {s for s in self.offsets if query - 1 + s <= last}
        steps |= {rng.randint(1, last - query + 1) for _ in range(self.random_points) if last >= query}
        if ex.kind == TURN:  # points on both sides of the turn
            steps |= {s for s in (start - query, start - query + self.turn_margin, start - query + 2 * self.turn_margin)
                      if 0 <= s and query - 1 + s <= last}
        points = []
        for s in sorted(steps):
            t = query - 1 + s
            points.append(Point(t, self.label_at(ex, t, start)))
        labelled = [p for p in points if p.label != IGNORE]
        if len(labelled) > self.max_points:  # keep the first points (the start matters most) and a spread of the rest
            keep = labelled[:self.max_points // 2]
            rest = labelled[self.max_points // 2:]
            keep += sorted(rng.sample(rest, self.max_points - len(keep)), key=lambda p: p.t)
            labelled = keep
        return Spec(query, tuple(labelled))

    def label_at(self, ex: Example, t: int, start: int) -> int:
        if ex.kind != TURN:
            return int(ex.label)
        if t < start:
            return 0
        return int(ex.label) if t >= start - 1 + self.turn_margin else IGNORE

    # --- training hooks -------------------------------------------------------------------
    def prepare(self, model: Model, encode: Any, examples: Sequence[Example]) -> None:
        self.specs = {e.digest(): self.spec(model, encode.ids, e) for e in examples}

    def setup(self, hf: Any) -> Any:
        self.head = SafetyHead.for_model(hf, window=self.window, seed=self.seed)
        hf.add_module("safety_signal_head", self.head)  # its parameters join the optimizer; removed again in `save`
        self.history = []
        return hf

    def forward(self, hf: Any, batch: Batch) -> SignalOutput:
        missing = [k for k in batch.keys if k not in self.specs]
        if missing:
            raise HarnessError(f"safety_signal objective: {len(missing)} examples in a batch were not prepared "
                               "(give train() a fixed example list, not one redrawn per epoch)")
        specs = [self.specs[k] for k in batch.keys]
        ids, mask = batch.input_ids, batch.attention_mask
        rows, width = ids.shape
        count = max(1, max(len(s.points) for s in specs))
        embeds = hf.get_input_embeddings()(ids)
        inputs = torch.cat([embeds, self.head.cls_inputs(rows, count, embeds)], dim=1)
        allowed, positions, labels = self.layout(specs, mask, count)
        hidden = hf.get_decoder()(inputs_embeds=inputs, attention_mask=allowed[:, None].to(ids.device),
                                  position_ids=positions.to(ids.device)).last_hidden_state
        trained = batch.weights > 0
        flat = hidden[:, :width].reshape(-1, hidden.shape[-1])[batch.positions[trained]]
        logits = hf.get_output_embeddings()(flat).float()
        logprobs = torch.log_softmax(logits, dim=-1).gather(1, batch.targets[trained][:, None]).squeeze(1)
        labels = labels.to(ids.device)
        cls_logits = self.head.logits(hidden[:, width:])[labels != IGNORE]
        return SignalOutput(logprobs, batch.weights[trained], cls_logits, labels[labels != IGNORE])

    def layout(self, specs: Sequence[Spec], mask: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The [rows, T+K, T+K] boolean attention mask (True = may attend), position ids and [CLS] labels."""
        rows, width = mask.shape
        size = width + count
        real = mask.bool().cpu()
        allowed = torch.zeros(rows, size, size, dtype=torch.bool)
        allowed[:, :width, :width] = torch.tril(torch.ones(width, width, dtype=torch.bool))[None] & real[:, None, :]
        allowed[:, torch.arange(size), torch.arange(size)] = True  # every row attends to itself (pads, unused slots)
        positions = torch.zeros(rows, size, dtype=torch.long)
        positions[:, :width] = torch.arange(width)
        labels = torch.full((rows, count), IGNORE, dtype=torch.long)
        for b, spec in enumerate(specs):
            for j, point in enumerate(spec.points):
                slot = width + j
                allowed[b, slot, : spec.query] = True
                first = spec.query if self.window is None else max(spec.query, point.t - self.window + 1)
                allowed[b, slot, first : point.t + 1] = True
                positions[b, slot] = point.t + 1
                labels[b, j] = point.label
        return allowed, positions, labels

    def loss(self, out: SignalOutput, batch: Batch) -> torch.Tensor:
        lm = (-out.logprobs * out.weights).sum() / max(len(out.logprobs), 1)
        if len(out.cls_labels):
            cls = torch.nn.functional.cross_entropy(out.cls_logits, out.cls_labels)
            accuracy = float((out.cls_logits.argmax(-1) == out.cls_labels).float().mean())
        else:
            cls, accuracy = out.cls_logits.sum() * 0.0, float("nan")
        self.history.append({"lm": float(lm.detach()), "cls": float(cls.detach()), "cls_accuracy": accuracy, "points": len(out.cls_labels)})
        return lm + self.lam * cls

    def save(self, hf: Any, out: Path) -> None:
        import json

        self.head.save(out)
        if hasattr(hf, "safety_signal_head"):  # keep the LM's weight file an ordinary model
            del hf.safety_signal_head
        (out / "safety_signal_train.json").write_text(json.dumps({"objective": self.describe(), "history": self.history}) + "\n")
