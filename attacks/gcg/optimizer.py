"""The GCG step loop for one suffix over one behavior (individual) or several (universal).

Each step: the token gradient at the current suffix; `search_width` one-token swaps from the
top-k tokens per position; swaps that do not re-tokenize to themselves dropped; the
lowest-loss candidate becomes the suffix (even when it is worse: plain GCG, no buffer).
The best suffix seen is what is returned.

Early stop (both optional): the loss falls to `stop_loss`; or, every `check_every` steps, a
real greedy generation with the best suffix is judged harmful (for every behavior) by the
check judge. Restarts run the same optimization with seeds `seed`, `seed + 1`, ... and keep
the lowest loss, stopping at the first that succeeds.

Checkpoints (optional): after each listed number of steps (0: before the first), the best suffix so far is kept
as a snapshot, so one optimization of `steps` answers "what does GCG reach after 10, 25, ... steps" (the suffix a
run stopped at that many steps would have found: the loop does not look ahead).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import Field
from tqdm.auto import tqdm

from attacks.gcg.batching import AutoBatch
from attacks.gcg.sampling import sample_candidates, unique
from attacks.gcg.scorer import Scorer
from attacks.gcg.slot import SuffixSlot
from attacks.gcg.tokens import allowed_tokens, decode, round_trips
from harness.errors import HarnessError
from harness.judge.base import Judge
from harness.model.base import Model
from harness.types import Behavior, Frozen, Request, Sampling

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

REFERENCE_INIT = " !" * 20  # llm-attacks' initial suffix (20 "!" tokens), with the space that joins it to the query


class GCGSettings(Frozen):
    """Everything that changes which suffix is found (part of the test-case key)."""

    suffix_init: str = REFERENCE_INIT
    steps: int = Field(500, ge=1)
    search_width: int = Field(512, ge=1)
    topk: int = Field(256, ge=1)
    seed: int = 0
    restarts: int = Field(1, ge=1)
    allow_non_ascii: bool = False
    filter_tokens: bool = True  # drop candidates that do not re-tokenize to themselves in their prompt
    checkpoints: tuple[int, ...] = ()  # keep the best suffix after these many steps too (0: the initial suffix)
    stop_loss: float | None = None
    check_every: int = Field(0, ge=0)  # judge a greedy generation every N steps (0: never)
    check_tokens: int = Field(32, ge=1)


@dataclass
class Found:
    suffix_ids: list[int]
    suffix: str
    loss: float
    initial_loss: float
    losses: list[float]
    steps: int
    restart: int
    stopped: str
    success: bool | None
    seconds: float
    snapshots: list[tuple[int, list[int], float]] = field(default_factory=list)  # (steps, best ids, best loss)


@dataclass
class Speed:
    """How scoring runs (no effect on which suffix is found, beyond float rounding)."""

    batch_size: int | None = None  # candidate rows per forward (None: a whole position group); halves on OOM
    groups: int | None = None  # position groups per step (None: as many as keep forward passes big enough)
    bounds: Sequence[int] = (1, 2, 4, 8)  # target-token counts after which losing candidates are dropped
    prune: bool = True
    precision: str = "auto"  # candidates scored in bf16 where native (shortlist re-scored in float32), or "float32"


class GCG:
    def __init__(self, model: Model, settings: GCGSettings, speed: Speed | None = None, judge: Judge | None = None,
                 progress: bool = True, penalty: Callable[[Sequence[str], Sequence[str]], list[float]] | None = None,
                 penalty_weight: float = 1.0) -> None:
        self.model = model
        self.penalty = penalty  # adaptive GCG: a defense's evasion cost of (user text, target), added to the loss
        self.penalty_weight = penalty_weight
        self.settings = settings
        self.speed = speed or Speed()
        self.judge = judge
        self.progress = progress
        self._allowed: torch.Tensor | None = None
        self.batching = AutoBatch(self.speed.batch_size, self.speed.groups)  # remembers an OOM-reduced size

    @property
    def allowed(self) -> torch.Tensor:
        if self._allowed is None:
            vocab = self.model.hf.get_input_embeddings().weight.shape[0]
            self._allowed = allowed_tokens(self.model.tokenizer, vocab, ascii_only=not self.settings.allow_non_ascii)
        return self._allowed

    def init_ids(self, slots: Sequence[SuffixSlot]) -> list[int]:
        ids = self.model.tokenizer(self.settings.suffix_init, add_special_tokens=False).input_ids
        if not ids:
            raise HarnessError(f"attack.suffix_init={self.settings.suffix_init!r} has no tokens")
        import torch

        if self.settings.filter_tokens and not round_trips(self.model.tokenizer, slots, torch.tensor([ids]))[0]:
            log.warning("gcg: the initial suffix %r does not re-tokenize to itself after the query of %s; "
                        "optimizing anyway (candidates are filtered)", self.settings.suffix_init, slots[0].behavior_id)
        return ids

    def optimize(self, behaviors: Sequence[Behavior], slots: Sequence[SuffixSlot], label: str) -> Found:
        """The best suffix over the restarts: the first one the judge confirms, else the lowest loss."""
        best: Found | None = None
        for restart in range(self.settings.restarts):
            found = self._run(behaviors, slots, label, restart)
            if found.success:
                return found
            if best is None or found.loss < best.loss:
                best = found
            if found.stopped == "loss":
                break
        assert best is not None
        return best

    def _run(self, behaviors: Sequence[Behavior], slots: Sequence[SuffixSlot], label: str, restart: int) -> Found:
        import torch

        s = self.settings
        tok = self.model.tokenizer
        start = time.perf_counter()
        scorer = Scorer(self.model.hf, slots, self.batching, self.speed.bounds, self.speed.precision)
        _ = self.allowed  # computed once per model, before the clock of the first step
        generator = torch.Generator().manual_seed(s.seed + restart)
        suffix = torch.tensor(self.init_ids(slots))
        best_ids, best_loss, initial, losses = suffix, math.inf, math.nan, []
        stopped, success = "steps", None
        snapshots: list[tuple[int, list[int], float]] = []
        marks = set(s.checkpoints)
        desc = f"gcg {label}" + (f" r{restart}" if s.restarts > 1 else "")
        with tqdm(range(s.steps), desc=desc, unit="step", disable=not self.progress, leave=False) as bar:
            for step in bar:
                grad = scorer.gradient(suffix)
                if step == 0:
                    initial = best_loss = grad.loss + float(self.penalties(slots, suffix[None])[0])
                    if 0 in marks:
                        snapshots.append((0, suffix.tolist(), best_loss))
                candidates, positions = unique(*sample_candidates(suffix, grad.grad, self.allowed, s.search_width, s.topk, generator))
                if s.filter_tokens:
                    keep = round_trips(tok, slots, candidates)
                    candidates, positions = candidates[keep], positions[keep]
                if not len(candidates):
                    log.warning("gcg %s step %d: no candidate re-tokenizes to itself; keeping the suffix", label, step)
                    losses.append(grad.loss)
                    if step + 1 in marks:
                        snapshots.append((step + 1, best_ids.tolist(), best_loss))
                    continue
                if self.penalty is None:
                    index, loss, _ = scorer.best(candidates, positions, grad, prune=self.speed.prune)
                else:  # adaptive: target loss + weight x evasion cost; no pruning (the bound is on the target loss only)
                    total = scorer.losses(candidates, positions, grad)[0] + self.penalties(slots, candidates)
                    index = int(total.argmin())
                    loss = float(total[index])
                suffix = candidates[index]
                losses.append(loss)
                if loss < best_loss:
                    best_ids, best_loss = suffix, loss
                if step + 1 in marks:
                    snapshots.append((step + 1, best_ids.tolist(), best_loss))
                bar.set_postfix(loss=f"{loss:.3f}", best=f"{best_loss:.3f}", suffix=decode(tok, best_ids.tolist())[-40:], refresh=False)
                if s.stop_loss is not None and best_loss <= s.stop_loss:
                    stopped = "loss"
                    break
                if s.check_every and (step + 1) % s.check_every == 0:
                    success = self.succeeds(behaviors, slots, best_ids.tolist())
                    if success:
                        stopped = "judge"
                        break
        ids = best_ids.tolist()
        return Found(ids, decode(tok, ids), best_loss, initial, losses, len(losses), restart, stopped, success,
                     time.perf_counter() - start, snapshots)

    def penalties(self, slots: Sequence[SuffixSlot], candidates: torch.Tensor) -> torch.Tensor:
        """weight x the evasion cost of each candidate's user turn, averaged over the slots (0 without a penalty)."""
        import torch

        if self.penalty is None:
            return torch.zeros(len(candidates), dtype=torch.float64)
        texts = [decode(self.model.tokenizer, ids.tolist()) for ids in candidates]
        costs = torch.tensor([self.penalty([slot.message(t).content for t in texts], [slot.target] * len(texts))
                              for slot in slots], dtype=torch.float64)
        return self.penalty_weight * costs.mean(0)

    def succeeds(self, behaviors: Sequence[Behavior], slots: Sequence[SuffixSlot], suffix_ids: list[int]) -> bool:
        """Greedy generation with the suffix, judged: harmful for every behavior?"""
        from harness.engine.hf import HFEngine
        from harness.judge.keyword import KeywordJudge

        judge = self.judge or KeywordJudge(phrases="gcg")
        text = decode(self.model.tokenizer, suffix_ids)
        sampling = Sampling(max_tokens=self.settings.check_tokens)
        requests = [Request(behavior_id=slot.behavior_id, messages=(slot.message(text),), sampling=sampling, attack="gcg")
                    for slot in slots]
        completions = HFEngine(self.model, progress=False).generate(requests)
        verdicts = judge.judge(list(zip(behaviors, completions, strict=True)))
        return all(v.harmful for v in verdicts)
