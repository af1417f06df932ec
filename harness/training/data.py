"""Training data and how it becomes batches: the `Example` a recipe writes, the `Encoder` that
tokenizes examples with the model's own chat template into padded batches that mark the trained
positions (`Batch`), and the length-grouped order the loop draws batches in.

The loop itself (settings, objectives, the cached `train`) is `harness.training.loop`, which re-exports
these names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.model.base import Model
from harness.types import Frozen, Message

if TYPE_CHECKING:
    import torch


class Example(Frozen):
    messages: tuple[Message, ...]
    response: str  # trained on, followed by the end-of-turn token when `ends`
    prefix: str = ""  # assistant text before the response: context, no loss
    ends: bool = True  # False for an answer cut off at a token limit: it must not be taught to end there
    weight: float = 1.0
    kind: str = ""  # refusal | utility | recovery | harmful | ... (for logs)
    label: int | None = None  # a class label for objectives with a classification head (e.g. 1 = malicious)
    # digest(): every field, set or not (Frozen's), so the cache key sees all of an example


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    positions: torch.Tensor  # [N] flat indices (b*T + t) of tokens whose *next* token is trained
    targets: torch.Tensor  # [N] the next tokens
    response_pos: torch.Tensor  # [N] 0-based index of each target within its response
    weights: torch.Tensor  # [N] example weight of each target
    example: torch.Tensor  # [N] example index in the batch
    keys: list[str]  # example digests, for objectives that precompute per-example values
    # leading tokens every row shares and no row trains on (the chat template's system turn): `token_logprobs`
    # encodes them once for the whole batch (Encoder(shared_prefix=True); 0 = every row encoded in full)
    prefix: int = 0

    def to(self, device: Any) -> Batch:
        tensors = {k: v.to(device) for k, v in vars(self).items() if hasattr(v, "to")}
        return Batch(**{**vars(self), **tensors})


class Encoder:
    """Tokenizes examples with the model's own chat template into padded batches; with `shared_prefix` each
    batch also says how many leading tokens all its rows share before the first trained position (`Batch.prefix`).
    Token ids are computed once per example and remembered (an epoch's length grouping and its batches
    read the same ids)."""

    def __init__(self, model: Model, max_length: int, shared_prefix: bool = False) -> None:
        self.model = model
        self.max_length = max_length
        self.shared_prefix = shared_prefix
        self.memo: dict[Example, tuple[list[int], int]] = {}
        self.eos = model.tokenizer.eos_token_id
        self.pad = model.tokenizer.pad_token_id

    def ids(self, ex: Example) -> tuple[list[int], int]:
        """Full token ids and where the trained response starts."""
        if ex in self.memo:
            return self.memo[ex]
        self.memo[ex] = self.encode(ex)
        return self.memo[ex]

    def encode(self, ex: Example) -> tuple[list[int], int]:
        prompt = self.model.prompt_ids(ex.messages, ex.prefix)
        response = self.model.tokenizer(ex.response, add_special_tokens=False).input_ids + ([self.eos] if ex.ends else [])
        ids = (prompt + response)[: self.max_length]
        return ids, len(prompt)

    def __call__(self, examples: Sequence[Example]) -> Batch:
        import torch

        encoded = [self.ids(e) for e in examples]
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(encoded), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        positions, targets, response_pos, weights, example = [], [], [], [], []
        for b, ((ids, start), ex) in enumerate(zip(encoded, examples, strict=True)):
            input_ids[b, : len(ids)] = torch.tensor(ids)
            mask[b, : len(ids)] = 1
            for t in range(max(start, 1), len(ids)):  # token t is predicted at position t-1
                positions.append(b * width + t - 1)
                targets.append(ids[t])
                response_pos.append(t - start)
                weights.append(ex.weight)
                example.append(b)
        prefix = 0
        if self.shared_prefix and len(encoded) > 1:
            # shared by every row, and before every row's first trained position (token t is predicted at t-1)
            prefix = min(len(os.path.commonprefix([ids for ids, _ in encoded])), *(max(start, 1) - 1 for _, start in encoded))
        return Batch(input_ids, mask, torch.tensor(positions), torch.tensor(targets), torch.tensor(response_pos),
                     torch.tensor(weights, dtype=torch.float32), torch.tensor(example), [e.digest() for e in examples],
                     prefix)


def length_grouped(examples: Sequence[Example], encode: Encoder, batch_size: int, seed: int) -> list[Example]:
    """`examples` in transformers' length-grouped order: consecutive `batch_size` slices have similar lengths."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    lengths = [len(encode.ids(e)[0]) for e in examples]
    order = get_length_grouped_indices(lengths, batch_size, generator=torch.Generator().manual_seed(seed))
    return [examples[i] for i in order]


DataFn = Callable[[int], Sequence[Example]]  # epoch -> examples (recipes may redraw per epoch)
