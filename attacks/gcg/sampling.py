"""Candidate suffixes from the token gradient.

For each suffix position, the `topk` allowed tokens with the most negative gradient (the
largest first-order decrease of the loss) are the replacements to try. Each candidate
changes exactly one position. Positions are spread evenly over the candidates, as in the
reference implementation (llm-attacks), so every position gets `width / length` tries; the
replacement at each is drawn uniformly from that position's top-k.

Candidates come back sorted by the position they change, which lets the scorer reuse the
keys and values of the unchanged tokens before that position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def sample_candidates(
    suffix: torch.Tensor, grad: torch.Tensor, allowed: torch.Tensor, width: int, topk: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`width` one-token swaps of `suffix` [length]: (candidates [width, length], changed positions [width])."""
    import torch

    length = suffix.shape[0]
    scores = grad.float().masked_fill(~allowed.to(grad.device), float("inf"))
    top = (-scores).topk(min(topk, int(allowed.sum())), dim=1).indices.cpu()  # [length, k]
    positions = (torch.arange(width) * length) // width  # even spread, sorted
    picks = torch.randint(0, top.shape[1], (width,), generator=generator)
    candidates = suffix.cpu().repeat(width, 1)
    candidates[torch.arange(width), positions] = top[positions, picks]
    return candidates, positions


def unique(candidates: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop repeated candidates (same swap drawn twice), keeping position order."""
    import torch

    seen: set[tuple[int, ...]] = set()
    keep = []
    for i, row in enumerate(candidates.tolist()):
        key = tuple(row)
        keep.append(key not in seen)
        seen.add(key)
    mask = torch.tensor(keep, dtype=torch.bool)
    return candidates[mask], positions[mask]
