"""Supervised fine-tuning with unlikelihood examples: some responses are trained to be *unlikely*.

Examples whose `kind` is in `kinds` are negatives: the loss pushes down the probability of the
whole opening of their response (its first `first_tokens` tokens, as one sequence),

    L_neg = - log(1 - p_theta(y_1 .. y_m | prompt)),

(sequence-level unlikelihood, Welleck et al. 2020), and every other example is plain
cross-entropy. The sequence-level form penalises the opening as a whole: a benign answer that
also starts with "I" is not pushed down because a refusal starting "I'm sorry" is.

Why for safety SFT: which prompts a model refuses is decided in its first response tokens, and
in plain SFT those tokens are a small share of a benign answer's loss (its content is the rest);
a negative "benign prompt -> refusal" example spends its whole loss on that decision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from harness.model.base import Model
from harness.training.loop import Batch, Example, Objective

if TYPE_CHECKING:
    import torch


class UnlikelihoodObjective(Objective):
    name = "unlikelihood"

    def __init__(self, kinds: Sequence[str], first_tokens: int = 6, weight: float = 1.0) -> None:
        self.kinds = tuple(sorted(kinds))
        self.first_tokens = first_tokens
        self.weight = weight
        self.negatives: set[str] = set()  # digests of the negative examples

    def describe(self) -> dict[str, Any]:
        return {"objective": self.name, "kinds": list(self.kinds), "first_tokens": self.first_tokens,
                "weight": self.weight}

    def prepare(self, model: Model, encode: Callable[[Sequence[Example]], Batch], examples: Sequence[Example]) -> None:
        self.negatives = {e.digest() for e in examples if e.kind in self.kinds}

    def loss(self, logprobs: torch.Tensor, batch: Batch) -> torch.Tensor:
        import torch

        negative = torch.tensor([k in self.negatives for k in batch.keys], device=logprobs.device)
        token_negative = negative[batch.example]
        nll = (-logprobs * batch.weights)[~token_negative].sum()
        opening = token_negative & (batch.response_pos < self.first_tokens)
        # log p(opening) per example: the sum of its first tokens' log-probs
        seq = torch.zeros(len(batch.keys), dtype=logprobs.dtype, device=logprobs.device)
        seq = seq.index_add(0, batch.example[opening], logprobs[opening])
        weight = torch.zeros_like(seq)
        weight[batch.example] = batch.weights.to(seq.dtype)  # each example's weight (the same on all its tokens)
        # -log(1 - p) = -log(-expm1(log p)); log p is kept below 0 so the loss stays finite
        unlikely = -torch.log(-torch.expm1(seq.clamp(max=-1e-4)))
        return (nll + self.weight * (unlikely * weight)[negative].sum()) / batch.weights.numel()
