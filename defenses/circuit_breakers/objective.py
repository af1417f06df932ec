"""The representation-rerouting (RR) objective of circuit breakers (Zou et al. 2024), for the shared training loop.

On a harmful example (a harmful request and a harmful answer) the trained model's hidden states at
the rerouted `layers` are pushed to be orthogonal to the frozen original's:

    L_rr = mean over layers and positions of ReLU(cos(h_theta, h_ref))

and on a retain example (a benign request and its answer, or a harmful request and its refusal)
the hidden states at every layer up to the deepest rerouted one are kept where they were:

    L_retain = mean over layers and tokens of || h_theta - h_ref ||_2 / || h_ref ||_2

The paper's retain term is the plain L2 distance; here it is relative to the original state's norm,
so that both terms are scale-free. Why: at the start the trained states equal the original's, where
cos is at its maximum and the rerouting gradient is zero; near there it grows only with the angle,
and its size is ~angle / ||h||, while the plain L2's gradient has size 1 whatever the distance. On the
embedded SmolLM2 (||h|| ~150 after layer 10, ~600 after layer 20, one shared massive dimension) the
plain L2 outweighed rerouting by two to three orders of magnitude from the second step on: the first
run's mean ReLU(cos) stayed at 1.000 for all 42 steps while the states jittered at an L2 distance of
~1 (docs/alignment-lab.md).

    L = c_rr(t) * L_rr + c_retain(t) * L_retain,  c_rr = alpha * (1 - t / 2T),  c_retain = alpha * t / 2T

over optimizer steps t = 0 .. T-1 (the paper's schedule: rerouting dominates early, retention grows).

Which states: layer l is the residual stream after the first l decoder layers (HF's hidden_states[l];
for the last layer, before the final norm), 1 <= l <= num_hidden_layers. On harmful examples the
rerouted positions are those that have read at least one token of the harmful answer (the state
right after the prompt predicts the answer's first token and is shared with the refusal example
of the same request, which the retain set keeps: the model must still begin a refusal there). On
retain examples every real token counts (system prompt, request and answer), as in the paper.

The frozen original is free with LoRA (peft's `disable_adapter()`); with full fine-tuning `setup`
keeps a frozen copy and freezes the token embeddings (tied to the output head in small models: training
them would change what the model says through the head, not through its representations; LoRA leaves
them alone too). Only the layers up to the deepest rerouted one run (the later ones cannot change
the loss; with LoRA their adapters stay zero, the paper's `layers_to_transform`).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.model.base import Model
from harness.training.loop import Batch, Example, Objective, TrainSettings

if TYPE_CHECKING:
    import torch

HARMFUL = "harmful"  # Example.kind of a rerouted example; every other kind is retained


def check_layers(layers: Sequence[int], available: int) -> None:
    bad = [layer for layer in layers if not 1 <= layer <= available]
    if bad or not layers:
        raise HarnessError(f"defense.layers={list(layers)}: each must be a layer 1..{available} of this model "
                           f"({available} decoder layers), e.g. [{max(1, available // 3)}, {max(1, 2 * available // 3)}]")


def planned_steps(examples: int, settings: TrainSettings) -> int:
    """The optimizer steps `fit` will take on `examples` (the schedule's T)."""
    per_epoch = math.ceil(examples / (settings.batch_size * settings.grad_accum))
    return max(1, min(settings.max_steps or per_epoch * settings.epochs, per_epoch * settings.epochs))


def reroute_loss(states: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """mean ReLU(cosine) of [..., H] states against the frozen original's (0 when already orthogonal or opposite)."""
    import torch

    if states.numel() == 0:
        return states.sum() * 0.0
    cos = torch.nn.functional.cosine_similarity(states.float(), reference.float(), dim=-1)
    return torch.relu(cos).mean()


def retain_loss(states: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """mean L2 distance of [..., H] states from the frozen original's, relative to the original's norm."""
    if states.numel() == 0:
        return states.sum() * 0.0
    ref = reference.float()
    return ((states.float() - ref).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-6)).mean()


def layer_states(hf: Any, batch: Batch, deepest: int) -> list[torch.Tensor]:
    """The residual stream [B, T, H] after each of the first `deepest` decoder layers; the rest do not run."""
    decoder = hf.get_decoder()
    blocks = decoder.layers
    out: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, _a, o: out.append(o[0] if isinstance(o, tuple) else o))
             for b in blocks[:deepest]]
    decoder.layers = blocks[:deepest]
    try:
        decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    finally:
        decoder.layers = blocks
        for hook in hooks:
            hook.remove()
    return out


@dataclass
class RerouteOutput:
    rerouted: torch.Tensor  # [L, N, H] trained model's states at rerouted layers and harmful positions
    rerouted_ref: torch.Tensor
    retained: torch.Tensor  # [deepest, M, H] states at every layer up to the deepest, real tokens of retain examples
    retained_ref: torch.Tensor


class RerouteObjective(Objective):
    name = "circuit_breakers_rr"

    def __init__(self, layers: Sequence[int] = (10, 20), alpha: float = 10.0,
                 train: TrainSettings | None = None) -> None:
        if not layers:
            raise HarnessError("circuit_breakers: defense.layers=[]: give at least one layer to reroute, e.g. [10, 20]")
        self.layers = tuple(sorted(set(layers)))
        self.alpha = alpha
        self.train = train or TrainSettings()
        self.harmful: dict[str, bool] = {}
        self.total = 1
        self.calls = 0
        self.frozen: Any = None
        self.history: list[dict[str, float]] = []

    def describe(self) -> dict[str, Any]:
        return {"objective": self.name, "layers": list(self.layers), "alpha": self.alpha,
                "schedule": "c_rr=alpha*(1-t/2T), c_retain=alpha*t/2T", "retain": "layers 1..max(layers), all tokens, L2 relative to the original's norm",
                "reroute": "harmful answer positions after its first token"}

    @property
    def deepest(self) -> int:
        return max(self.layers)

    def coefficients(self, step: int) -> tuple[float, float]:
        """(c_rr, c_retain) at optimizer step `step` (0-based) of `self.total`."""
        progress = min(step, self.total) / (2 * self.total)
        return self.alpha * (1 - progress), self.alpha * progress

    # --- training hooks -------------------------------------------------------------------
    def prepare(self, model: Model, encode: Callable[[Sequence[Example]], Batch], examples: Sequence[Example]) -> None:
        self.harmful = {e.digest(): e.kind == HARMFUL for e in examples}
        if not any(self.harmful.values()):
            raise HarnessError("circuit_breakers: no harmful examples (kind='harmful') to reroute in the training data")
        self.total = planned_steps(len(examples), self.train)
        self.calls = 0
        self.history = []

    def setup(self, hf: Any) -> Any:
        check_layers(self.layers, hf.config.num_hidden_layers)
        for block in hf.get_decoder().layers[self.deepest:]:  # never run: nothing to train there
            block.requires_grad_(False)
        if not hasattr(hf, "disable_adapter"):  # full fine-tuning: keep the original beside the trained copy
            hf.get_input_embeddings().requires_grad_(False)
            self.frozen = copy.deepcopy(hf).eval().requires_grad_(False)
        return hf

    def reference(self, hf: Any, batch: Batch) -> list[torch.Tensor]:
        import torch

        with torch.no_grad():
            if self.frozen is not None:
                return layer_states(self.frozen, batch, self.deepest)
            training = hf.training
            hf.eval()
            try:
                with hf.disable_adapter():
                    return layer_states(hf, batch, self.deepest)
            finally:
                hf.train(training)

    def forward(self, hf: Any, batch: Batch) -> RerouteOutput:
        import torch

        missing = [k for k in batch.keys if k not in self.harmful]
        if missing:
            raise HarnessError(f"circuit_breakers objective: {len(missing)} examples in a batch were not prepared "
                               "(give train() a fixed example list, not one redrawn per epoch)")
        harmful = torch.tensor([self.harmful[k] for k in batch.keys], device=batch.input_ids.device)
        states, ref = layer_states(hf, batch, self.deepest), self.reference(hf, batch)
        width = states[0].shape[-1]
        rows = harmful[batch.example] & (batch.response_pos >= 1)
        at = batch.positions[rows]
        keep = (batch.attention_mask.bool() & ~harmful[:, None]).reshape(-1)

        def pick(layers: list[torch.Tensor], index: torch.Tensor, which: Sequence[int]) -> torch.Tensor:
            return torch.stack([layers[i - 1].reshape(-1, width)[index] for i in which])

        every = range(1, self.deepest + 1)
        return RerouteOutput(pick(states, at, self.layers), pick(ref, at, self.layers),
                             pick(states, keep, every), pick(ref, keep, every))

    def loss(self, out: RerouteOutput, batch: Batch) -> torch.Tensor:
        step = self.calls // self.train.grad_accum
        self.calls += 1
        c_rr, c_retain = self.coefficients(step)
        rr, retain = reroute_loss(out.rerouted, out.rerouted_ref), retain_loss(out.retained, out.retained_ref)
        self.history.append({"step": step, "c_rr": c_rr, "c_retain": c_retain, "rr": float(rr.detach()),
                             "retain": float(retain.detach()), "rerouted": out.rerouted.shape[1],
                             "retained": out.retained.shape[1]})
        return c_rr * rr + c_retain * retain

    def save(self, hf: Any, out: Path) -> None:
        self.frozen = None
        (out / "circuit_breakers_train.json").write_text(json.dumps({"objective": self.describe(),
                                                                    "steps": self.total, "history": self.history}) + "\n")
