"""The token-wise constrained fine-tuning objective (Qi et al. 2025, section 4).

    L = - sum_t (2 / beta_t) * log sigmoid(beta_t * (log pi_theta(y_t | .) - log pi_ref(y_t | .)))

over response tokens t (1-based), where pi_ref is the model *before* fine-tuning (the aligned
model). A large beta_t pins token t's log-probability near the reference (the loss saturates
once pi_theta moves above it and pushes back hard below it); as beta_t -> 0 it becomes plain
cross-entropy. The paper's defaults protect the first tokens, where shallow alignment lives:
beta_1 = 0.5, beta_2..5 = 2, beta_t = 0.1 after.

The reference log-probabilities are computed once, before training (`prepare`), with the
initial weights, and the reference model is freed before the trainable copy is loaded: no
second model is held in memory during training.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from harness.errors import HarnessError
from harness.model.base import Model
from harness.settings import parse
from harness.training.loop import Batch, Example, Objective, token_logprobs
from harness.types import Frozen
from harness.util.progress import progress

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class Betas(Frozen):
    first: float = Field(0.5, gt=0)  # beta_1
    early: float = Field(2.0, gt=0)  # beta_2 .. beta_{early_until}
    early_until: int = Field(5, ge=1)
    rest: float = Field(0.1, gt=0)  # beta_t after


class ConstrainedObjective(Objective):
    name = "constrained"

    def __init__(self, betas: Betas | dict[str, Any] | None = None, batch_size: int = 8) -> None:
        self.betas = betas if isinstance(betas, Betas) else parse(Betas, "defense.betas", betas or {})
        self.batch_size = batch_size
        self.reference: dict[str, torch.Tensor] = {}

    def describe(self) -> dict[str, Any]:
        return {"objective": self.name, "betas": self.betas.model_dump()}

    def beta(self, response_pos: torch.Tensor) -> torch.Tensor:
        """beta for each 0-based response position."""
        import torch

        b = self.betas
        t = response_pos + 1
        return torch.where(t == 1, b.first, torch.where(t <= b.early_until, b.early, b.rest)).float()

    def prepare(self, model: Model, encode: Callable[[Sequence[Example]], Batch], examples: Sequence[Example]) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        ref = AutoModelForCausalLM.from_pretrained(model.folder, dtype=torch.float32, trust_remote_code=model.trust_remote_code)
        ref.to(model.torch_device).eval()
        unique = list({e.digest(): e for e in examples}.values())
        with torch.inference_mode():
            for i in progress(range(0, len(unique), self.batch_size), desc=f"reference log-probs [{model.name}]", unit="batch"):
                batch = encode(unique[i : i + self.batch_size]).to(model.torch_device)
                lp = token_logprobs(ref, batch).float().cpu()
                for b, key in enumerate(batch.keys):
                    self.reference[key] = lp[batch.example.cpu() == b]
        del ref  # the reference model is gone before the trainable copy is loaded
        log.info("constrained objective: reference log-probs for %d examples", len(self.reference))

    def reference_for(self, batch: Batch) -> torch.Tensor:
        import torch

        parts = []
        counts = torch.bincount(batch.example, minlength=len(batch.keys)).tolist()
        for b, (key, count) in enumerate(zip(batch.keys, counts, strict=True)):
            ref = self.reference.get(key)
            if ref is None:
                raise HarnessError("constrained objective: an example was not seen by prepare(); recipes that redraw "
                                   "their data every epoch cannot use it (reference log-probs are computed once)")
            if len(ref) != count:
                raise HarnessError(f"constrained objective: example {key} has {count} trained tokens, reference {len(ref)}")
            parts.append(ref)
        return torch.cat(parts).to(batch.targets.device)

    def loss(self, logprobs: torch.Tensor, batch: Batch) -> torch.Tensor:
        import torch.nn.functional as F

        beta = self.beta(batch.response_pos)
        ratio = logprobs - self.reference_for(batch)
        per_token = (2.0 / beta) * F.softplus(-beta * ratio)  # -log sigmoid(x) = softplus(-x)
        return (per_token * batch.weights).sum() / batch.weights.numel()
