"""The GCG target loss on one model: its token gradient, and the best candidate of a step.

Loss of a suffix = mean over slots (behaviors) of the mean cross-entropy of the slot's
target tokens, teacher-forced after `before + suffix + after`.

What makes scoring fast, without changing which candidate wins:

- The template and query before the suffix are run once per slot; their keys/values are
  reused by every gradient and every candidate (`prefix`).
- The gradient pass runs the current suffix; its keys/values are kept (`Gradient.kv`), so a
  candidate that swaps position p reuses the keys/values of suffix tokens 0..p-1 and
  recomputes only from p on. Candidates are scored in batches that start at one position.
- Logits are computed only where they are used: at the positions that predict target
  tokens (`logits_to_keep`), never over the vocabulary for the whole sequence; the last
  target token is never fed in.
- Branch and bound over target tokens: cross-entropy terms are >= 0, so the loss summed over
  the first k target tokens is a lower bound of a candidate's loss. Batches are scored in
  stages of target tokens (`bounds`); after each stage a candidate whose partial loss already
  exceeds the best complete loss found so far cannot win and is dropped. The winner and its
  loss are the same as scoring every candidate in full (up to float rounding, `TOLERANCE`).
- Low precision, float32 winner: on hardware with native bf16 (`precision="auto"`), a
  float32 model scores the candidates with a bf16 copy of itself (made once per scorer:
  half the model's memory more; weights, activations and keys/values in bf16, the
  cross-entropy in float32), keeps every candidate within `LOW_MARGIN` of the lowest bf16
  loss (the bound prunes against that margin too), and re-scores that shortlist in float32.
  The winner and its loss are the float32 ones when the float32 winner's bf16 loss is within
  `LOW_MARGIN` of the lowest bf16 loss (certain if every bf16 error is below `LOW_MARGIN / 2`;
  measured, not guaranteed: on the embedded model it was within 0.022 at each of 12 held-out
  steps, though single errors reached 0.04: bench/gcg_precision.py, docs/gcg.md); the
  gradient is always taken in the model's own precision.
  `precision="float32"` turns it off. (A bf16 copy, not autocast: autocast keeps the
  residual stream in float32 and casts activations at every matmul, which on a 2-core CPU
  cost as much time as bf16 saved in the matmuls.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attacks.gcg import kv
from attacks.gcg.attention import use_gqa_matmul
from attacks.gcg.batching import AutoBatch
from attacks.gcg.slot import SuffixSlot
from harness.engine.attention import sdpa_gqa_within
from harness.errors import HarnessError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # partial losses this close to the bound are kept (float rounding between batch shapes)
PRUNE_AT_LEAST = 0.2  # drop rows from a batch's cache only when at least this share of its rows is pruned
MIN_SAVING = 0.1  # stages that saved less than this share of the tokens ...
RETRY_AFTER = 4  # ... are skipped for this many steps (each stage costs a forward call and a cache copy)
LOW_MARGIN = 0.05  # bf16 scoring: candidates this close to the lowest bf16 loss are re-scored in float32
MAX_RESCORE = 16  # ... at most this many (the lowest bf16 losses; the float32 winner ranked <= 3 under bf16 in 12 held-out steps)
PRECISIONS = ("auto", "float32", "bfloat16")


@contextmanager
def contiguous_head(model: PreTrainedModel) -> Iterator[None]:
    """Feed the output head a contiguous input while inside.

    With `logits_to_keep`, transformers' causal LMs apply the head to a slice of the hidden
    states (`hidden[:, -k:]`), which is not contiguous; a linear layer over it ran 2.5x
    slower in float32 and 25x slower in bf16 on this CPU than over a contiguous copy
    (a [40, 12, 576] slice through SmolLM2's 49152 x 576 head: 471 vs 189 ms, 2004 vs 81 ms).
    """
    head = model.get_output_embeddings()
    if head is None:
        yield
        return
    handle = head.register_forward_pre_hook(lambda _module, args: (args[0].contiguous(), *args[1:]))
    try:
        yield
    finally:
        handle.remove()


def upcast(logits: torch.Tensor) -> torch.Tensor:
    """Logits in at least float32 for the cross-entropy (half-precision models)."""
    import torch

    return logits.to(torch.promote_types(logits.dtype, torch.float32))


@dataclass
class Part:
    """A slot on the model's device: the prefix keys/values and the token tensors after the suffix."""

    slot: SuffixSlot
    prefix: kv.KV
    prefix_len: int
    after: torch.Tensor  # [A]
    target: torch.Tensor  # [T]
    stages: list[int]  # target-token counts at which a batch is bounded; the last is T

    @property
    def tail(self) -> torch.Tensor:
        """What is fed after the suffix: the template after it, then the target except its last token."""
        import torch

        return torch.cat([self.after, self.target[:-1]])


@dataclass
class Gradient:
    grad: torch.Tensor  # [suffix length, vocab]: d loss / d one-hot suffix
    loss: float  # loss of the suffix the gradient was taken at
    kv: list[kv.KV]  # per slot: keys/values of prefix + suffix (+ tail) for that suffix


@dataclass
class ScoreStats:
    """How much work a step's scoring did (for progress and the bench)."""

    candidates: int = 0
    forward_tokens: int = 0  # token positions run through the model
    full_tokens: int = 0  # ... without the bound
    pruned: int = 0  # candidates dropped by the bound before their last target token
    rescored: int = 0  # bf16 scoring: shortlisted candidates re-scored in float32
    batches: int = 0
    staged: bool = False  # bounded within each slot's target tokens, not only between slots

    @property
    def saving(self) -> float:
        return 1 - self.forward_tokens / self.full_tokens if self.full_tokens else 0.0


def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes bf16 natively: a CPU with AVX512-BF16 or AMX, or a CUDA GPU that supports it."""
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    from harness.training.loop import native_bf16_cpu

    return str(device) == "cpu" and bool(native_bf16_cpu())


def low_precision(hf: PreTrainedModel, precision: str) -> torch.dtype | None:
    """The dtype of the model copy candidates are scored with, or None for the model's own precision."""
    import torch

    if precision not in PRECISIONS:
        raise HarnessError(f"attack.precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "float32" or hf.dtype != torch.float32:
        return None
    if precision == "bfloat16" or native_bf16(hf.device):
        return torch.bfloat16
    return None


class Scorer:
    def __init__(self, hf: PreTrainedModel, slots: Sequence[SuffixSlot], batching: AutoBatch | None = None,
                 bounds: Sequence[int] = (1, 2, 4, 8), precision: str = "float32") -> None:
        if not slots:
            raise HarnessError("attack=gcg: no behaviors to optimize a suffix for")
        self.low = low_precision(hf, precision)  # None: score in the model's precision
        self.hf = hf
        self._low_model: PreTrainedModel | None = None
        self.config = hf.config
        self.device = hf.device
        self.batching = batching or AutoBatch()
        self.bounds = sorted({int(b) for b in bounds if int(b) > 0})
        self.embedding = hf.get_input_embeddings()
        self.parts = [self._part(slot) for slot in slots]
        self.skip_stages = 0  # steps left to run without intermediate bounds (they did not pay lately)

    # --- set-up ----------------------------------------------------------------------
    @property
    def low_model(self) -> PreTrainedModel:
        """The model in `self.low` (a copy made on first use, kept for the scorer's life)."""
        import copy

        if self._low_model is None:
            assert self.low is not None
            self._low_model = copy.deepcopy(self.hf).to(self.low).eval()
            use_gqa_matmul(self._low_model)  # short query blocks: two matmuls beat the fused kernel (attacks/gcg/attention.py)
        return self._low_model

    def _tensor(self, ids: Sequence[int]) -> torch.Tensor:
        import torch

        return torch.tensor(list(ids), dtype=torch.long, device=self.device)

    def _part(self, slot: SuffixSlot) -> Part:
        import torch

        if not slot.before_ids:
            raise HarnessError(f"attack=gcg: the chat template renders nothing before the suffix of {slot.behavior_id!r}")
        with torch.no_grad():  # not inference_mode: these keys/values take part in gradient passes
            out = self.hf(input_ids=self._tensor(slot.before_ids)[None], use_cache=True, logits_to_keep=1)
        target = self._tensor(slot.target_ids)
        stages = [k for k in self.bounds if k < len(target)] + [len(target)]
        return Part(slot, kv.tensors(out.past_key_values), len(slot.before_ids), self._tensor(slot.after_ids), target, stages)

    # --- the loss of a relaxed (one-hot or mixed) suffix and its gradient --------------------
    def relaxed_loss(self, weights: torch.Tensor, part: Part) -> tuple[torch.Tensor, object]:
        """Mean target cross-entropy when the suffix embeddings are `weights @ E` ([length, vocab] weights).

        One-hot rows give the real suffix; other rows mix token embeddings (the continuous
        relaxation the GCG gradient is taken in). Returns the loss and the model's cache.
        """
        import torch

        embeds = torch.cat([weights.to(self.embedding.weight.dtype) @ self.embedding.weight, self.embedding(part.tail)])
        cache = kv.shared(part.prefix, part.prefix_len, 1, self.config)
        out = self.hf(inputs_embeds=embeds[None], past_key_values=cache, use_cache=True, logits_to_keep=len(part.target))
        loss = torch.nn.functional.cross_entropy(upcast(out.logits[0]), part.target)
        return loss, out.past_key_values

    def gradient(self, suffix: torch.Tensor) -> Gradient:
        """d loss / d one-hot(suffix), the loss at `suffix`, and the keys/values candidates reuse."""
        import torch

        onehot = torch.nn.functional.one_hot(suffix.to(self.device), self.embedding.weight.shape[0])
        onehot = onehot.to(self.embedding.weight.dtype).requires_grad_(True)
        grad = torch.zeros(onehot.shape, dtype=torch.promote_types(onehot.dtype, torch.float32), device=self.device)
        total, snapshots = 0.0, []
        with torch.enable_grad(), contiguous_head(self.hf):
            for part in self.parts:
                loss, cache = self.relaxed_loss(onehot, part)
                (g,) = torch.autograd.grad(loss / len(self.parts), onehot)
                grad += g
                total += loss.item() / len(self.parts)
                snapshots.append(kv.tensors(cache))
        return Gradient(grad=grad, loss=total, kv=snapshots)

    # --- candidate losses ----------------------------------------------------------------
    def _stage(self, model: PreTrainedModel, part: Part, candidates: torch.Tensor, position: int, snapshot: kv.KV,
               done: int, upto: int, cache):
        """Run the tokens that predict target tokens [done, upto); returns (summed cross-entropy [rows], cache, tokens)."""
        import torch

        rows = candidates.shape[0]
        if done == 0:
            inputs = torch.cat([candidates[:, position:].to(self.device),
                                torch.cat([part.after, part.target[: upto - 1]]).expand(rows, -1)], dim=1)
            cache = kv.shared(snapshot, part.prefix_len + position, rows, self.config)
        else:
            inputs = part.target[done - 1 : upto - 1].expand(rows, -1)
        out = model(input_ids=inputs, past_key_values=cache, use_cache=True, logits_to_keep=upto - done)
        logits = upcast(out.logits)
        ce = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), part.target[done:upto].repeat(rows), reduction="none"
        ).view(rows, -1).sum(-1)
        return ce, out.past_key_values, inputs.numel()

    def _score_batch(self, candidates: torch.Tensor, position: int, snapshots: list[kv.KV], bound: float | None,
                     stats: ScoreStats, staged: bool = True, low: bool = False) -> torch.Tensor:
        """Losses of one batch (all changing positions >= `position`); rows that cannot beat `bound` get +inf.

        `snapshots`: per slot, the keys/values of prefix + current suffix in the scoring model's dtype;
        `low`: score with the bf16 copy (bound with `LOW_MARGIN`)."""
        import torch

        rows = candidates.shape[0]
        model = self.low_model if low else self.hf
        margin = LOW_MARGIN if low else TOLERANCE
        acc = torch.zeros(rows, dtype=torch.float64, device=self.device)
        dead = torch.zeros(rows, dtype=torch.bool, device=self.device)  # proven not to beat the bound
        m = len(self.parts)
        for p_index, (part, snapshot) in enumerate(zip(self.parts, snapshots, strict=True)):
            alive = (~dead).nonzero().squeeze(1)  # rows in this slot's cache (pruned ones may linger in it)
            stats.full_tokens += rows * (candidates.shape[1] - position + len(part.after) + len(part.target) - 1)
            stages = part.stages if staged else part.stages[-1:]
            cache, done = None, 0
            for s_index, upto in enumerate(stages):
                ce, cache, tokens = self._stage(model, part, candidates[alive.cpu()], position, snapshot, done, upto, cache)
                stats.forward_tokens += tokens
                acc[alive] += ce.double() / (len(part.target) * m)
                done = upto
                if bound is None or (p_index == m - 1 and s_index == len(stages) - 1):
                    continue
                dead |= acc > bound + margin
                if dead.all():
                    break
                lingering = dead[alive]
                if s_index < len(stages) - 1 and lingering.float().mean() >= PRUNE_AT_LEAST:
                    keep = (~lingering).nonzero().squeeze(1)
                    cache.reorder_cache(keep)
                    alive = alive[keep]
            if dead.all():
                break
        stats.pruned += int(dead.sum())
        acc[dead] = float("inf")
        return acc

    def best(self, candidates: torch.Tensor, positions: torch.Tensor, grad: Gradient,
             prune: bool = True) -> tuple[int, float, ScoreStats]:
        """Index and loss of the lowest-loss candidate (rows sorted by changed position).

        Intermediate bounds are used while they pay: after a step where they saved less than
        MIN_SAVING of the tokens, the next RETRY_AFTER steps bound only between slots.
        """
        import torch

        staged = prune and not self.skip_stages
        self.skip_stages = max(0, self.skip_stages - 1)
        losses, stats = self.losses(candidates, positions, grad, prune=prune, staged=staged, low=True)
        if staged and stats.saving < MIN_SAVING:
            self.skip_stages = RETRY_AFTER
        if self.low is not None:  # re-score the bf16 shortlist in float32: exact winner and loss
            near = (losses <= losses.min() + LOW_MARGIN).nonzero().squeeze(1)
            short = near[losses[near].argsort()[:MAX_RESCORE]].sort().values  # position order
            stats.rescored = len(short)
            exact, _ = self.losses(candidates[short], positions[short], grad, prune=prune, staged=False)
            losses = torch.full_like(losses, float("inf"))
            losses[short] = exact
        index = int(losses.argmin())
        return index, float(losses[index]), stats

    def losses(self, candidates: torch.Tensor, positions: torch.Tensor, grad: Gradient,
               prune: bool = False, staged: bool = True, low: bool = False) -> tuple[torch.Tensor, ScoreStats]:
        """Loss of every candidate (with `prune`, +inf for those proven not to be the best).

        With `low` (and a low-precision scorer), by the bf16 copy: approximate losses, and pruning
        keeps every candidate within `LOW_MARGIN` of the best.
        """
        import torch

        low = low and self.low is not None
        snapshots = [[(k.to(self.low), v.to(self.low)) for k, v in layers] for layers in grad.kv] if low else grad.kv

        def score() -> tuple[torch.Tensor, ScoreStats]:
            stats = ScoreStats(candidates=len(candidates), staged=prune and staged)
            out = torch.full((len(candidates),), float("inf"), dtype=torch.float64)
            best = None
            # batches that start late in the suffix are the cheapest: score them first for an early bound
            tail = sum(len(p.after) + len(p.target) - 1 for p in self.parts) // len(self.parts)  # per forward pass
            for start, end in reversed(self.batching.plan(positions, candidates.shape[1], tail, self.device)):
                stats.batches += 1
                with torch.inference_mode():
                    batch = self._score_batch(candidates[start:end], int(positions[start]), snapshots,
                                              best if prune else None, stats, staged=prune and staged, low=low)
                out[start:end] = batch.cpu()
                lowest = float(batch.min())
                best = lowest if best is None else min(best, lowest)
            return out, stats

        if low:
            with contiguous_head(self.low_model):
                return self.batching.run(score, len(candidates))
        with contiguous_head(self.hf), sdpa_gqa_within(self.hf):  # the model is borrowed: restored after
            return self.batching.run(score, len(candidates))

    # --- reference: the plain full forward ----------------------------------------------------
    def full_losses(self, candidates: torch.Tensor) -> torch.Tensor:
        """Losses by a plain forward of the whole prompt (no cache, full logits): the slow reference."""
        import torch

        total = torch.zeros(len(candidates), dtype=torch.float64)
        with torch.no_grad():
            for part in self.parts:
                before = self._tensor(part.slot.before_ids).expand(len(candidates), -1)
                ids = torch.cat([before, candidates.to(self.device), part.tail.expand(len(candidates), -1)], dim=1)
                logits = upcast(self.hf(input_ids=ids).logits[:, -len(part.target):])
                ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), part.target.expand(len(candidates), -1),
                                                       reduction="none").mean(-1)
                total += ce.double().cpu() / len(self.parts)
        return total
