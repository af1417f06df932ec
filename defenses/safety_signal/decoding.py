"""Safety-signal decoding: the HF engine's batched generation, re-checking the [CLS]
classification on a schedule and steering to a refusal.

The loop is the one `transformers.generate` runs for the plain engine (left-padded batch,
one KV cache, greedy argmax after the engine's per-row sampler), with one addition: at the
schedule's steps, a [CLS] slot is evaluated over the KV cache (one extra single-token forward
whose cache entry is dropped again), seeing the prompt and the last `window` assistant tokens.
Steering, per row:

- malicious at step 0 (the query, and any prefill, before anything is generated): the refusal
  opening ("Sorry, I cannot fulfill your request because") is forced as the first tokens and
  the model continues from it, explaining why;
- a benign -> malicious flip confirmed by `hold` consecutive flagged checks: the tokens after
  the last benign check are withdrawn (masked out of attention, like padding, and dropped from
  the text) and the refusal is forced there, at the transition.

A refused row is not checked again. Every check and action is logged per completion (see
`Decision`); with a threshold that never fires (or no check due) the outputs are token for
token those of the plain engine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import Field

from defenses.safety_signal.head import SafetyHead
from defenses.safety_signal.schedule import CheckSchedule
from harness.engine.hf import HFEngine, Row, RowSampler
from harness.model.base import Model
from harness.types import Completion, Frozen

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

REFUSAL = "Sorry, I cannot fulfill your request because"


class Steering(Frozen):
    threshold: float = Field(0.5, ge=0.0, le=1.0)  # flag when p(malicious) > threshold (1.0: never)
    hold: int = Field(2, ge=1)  # consecutive flagged checks that confirm a flip after step 0
    window: int | None = Field(None, ge=1)  # recent assistant tokens the [CLS] sees; None = the head's own
    schedule: CheckSchedule = CheckSchedule()
    refusal: str = REFUSAL  # the forced refusal opening
    separator: str = " "  # put between kept text and a refusal inserted mid-stream


def steered_at(checks: Sequence[tuple[int, float]], steering: Steering) -> int | None:
    """The engine's rule, on a row's (step, p(malicious)) checks in order: the step at which it steers (flagged
    at step 0, or `hold` consecutive flagged checks later), None if it does not (see SafetySignalEngine.check)."""
    streak = 0
    for step, p in checks:
        if p <= steering.threshold:
            streak = 0
            continue
        streak += 1
        if step == 0 or streak >= steering.hold:
            return step
    return None


@dataclass
class Check:
    """What a classifier gets at a check: the cache holds the prompt and `step` generated tokens."""

    hf: Any
    cache: Any
    attention_mask: torch.Tensor  # [B, cache length + 1]: what the [CLS] may see (window applied), and itself
    position_ids: torch.Tensor  # [B, 1]: the [CLS]'s position, right after the last kept token
    step: int
    rows: list[Row]


class Classifier(Protocol):
    def __call__(self, check: Check) -> torch.Tensor:  # p(malicious), [B]
        ...


class HeadClassifier:
    """The trained [CLS] head, evaluated over the KV cache; the cache is left as it was."""

    def __init__(self, head: SafetyHead, source: str = "") -> None:
        self.head = head
        self.window = head.window
        self.source = source

    def describe(self) -> dict[str, Any]:
        return {"classifier": "cls_head"}

    def __call__(self, check: Check) -> torch.Tensor:
        embeds = check.hf.get_input_embeddings().weight
        inputs = self.head.cls_inputs(len(check.rows), 1, embeds)
        hidden = check.hf.get_decoder()(inputs_embeds=inputs, attention_mask=check.attention_mask,
                                        position_ids=check.position_ids, past_key_values=check.cache,
                                        use_cache=True).last_hidden_state
        check.cache.crop(-1)  # drop the [CLS] entry: ordinary tokens never attend to it
        return self.head.p_malicious(hidden[:, -1])


@dataclass
class RowState:
    watching: bool = True
    safe_until: int = 0  # generated tokens at the last benign check (the transition if a flip is confirmed)
    forced: list[int] = field(default_factory=list)  # refusal tokens still to emit
    removed: set[int] = field(default_factory=set)  # generated token indices withdrawn at a rollback
    checks: list[tuple[int, float]] = field(default_factory=list)
    action: dict[str, Any] | None = None

    def decision(self) -> dict[str, Any]:
        return {"checks": [[s, round(p, 4)] for s, p in self.checks], "flagged": self.action is not None,
                "action": self.action}


class SafetySignalEngine(HFEngine):
    name = "hf+safety_signal"

    def __init__(self, model: Model, classifier: Classifier, steering: Steering | None = None, batch_size: int = 32,
                 progress: bool = True, decisions_log: str | Path | None = None) -> None:
        super().__init__(model, batch_size=batch_size, progress=progress)
        self.classifier = classifier
        self.steering = steering or Steering()
        self.window = self.steering.window or getattr(classifier, "window", None)
        self.decisions_log = Path(decisions_log) if decisions_log else None
        self.decisions: dict[str, dict[str, Any]] = {}  # "<request key>:<sample>" -> decision

    def describe(self) -> dict[str, Any]:
        describe = getattr(self.classifier, "describe", None)
        return {**super().describe(), "engine": self.name, "steering": self.steering.model_dump(mode="json"),
                "window": self.window, **(describe() if describe else {"classifier": type(self.classifier).__name__})}

    # --- the generation loop ------------------------------------------------------------
    def generate_batch(self, batch: list[Row]) -> list[Completion]:
        import torch
        from transformers import DynamicCache, LogitsProcessorList

        hf, tok = self.model.hf, self.model.tokenizer
        pad, eos = tok.pad_token_id, tok.eos_token_id
        device = hf.device
        rows, width = len(batch), max(len(row.prompt) for row in batch)
        max_tokens = batch[0].request.sampling.max_tokens
        input_ids = torch.tensor([[pad] * (width - len(row.prompt)) + row.prompt for row in batch], device=device)
        mask = torch.tensor([[0] * (width - len(row.prompt)) + [1] * len(row.prompt) for row in batch], device=device)
        # where each row's assistant text starts: after the template, before any prefill
        starts = torch.tensor([width - len(row.prompt) + len(self.model.prompt_ids(row.request.messages)) for row in batch],
                              device=device)
        processors = LogitsProcessorList()
        if any(not row.request.sampling.greedy for row in batch):
            processors.append(RowSampler(batch, width, max_tokens, device))
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        explicit = not bool((mask == 1).all())  # `generate` drops an all-ones mask; so do we: same kernels, same numbers
        states = [RowState() for _ in batch]
        unfinished = torch.ones(rows, dtype=torch.long, device=device)
        cache = DynamicCache(config=hf.config)
        with torch.inference_mode():
            out = hf(input_ids=input_ids, attention_mask=mask if explicit else None, position_ids=positions,
                     past_key_values=cache, use_cache=True, logits_to_keep=1)
            logits = out.logits[:, -1].to(copy=True, dtype=torch.float32)
            next_pos = positions[:, -1] + 1
            for step in range(max_tokens):
                if self.steering.schedule.due(step) and any(s.watching for s, u in zip(states, unfinished.tolist()) if u):
                    withdrawn = self.check(step, batch, states, unfinished, hf, cache, mask, starts, next_pos)
                    for b, count in withdrawn.items():
                        mask[b, width + step - count : width + step] = 0
                        next_pos[b] -= count
                        explicit = True
                scores = processors(input_ids, logits) if processors else logits
                tokens = scores.argmax(-1)
                for b, state in enumerate(states):
                    if state.forced and unfinished[b]:
                        tokens[b] = state.forced.pop(0)
                tokens = tokens * unfinished + pad * (1 - unfinished)
                input_ids = torch.cat([input_ids, tokens[:, None]], dim=-1)
                unfinished = unfinished & (tokens != eos).long()
                if step + 1 == max_tokens or not unfinished.any():
                    break
                mask = torch.cat([mask, mask.new_ones((rows, 1))], dim=-1)
                out = hf(input_ids=tokens[:, None], attention_mask=mask if explicit else None,
                         position_ids=next_pos[:, None], past_key_values=cache, use_cache=True, logits_to_keep=1)
                logits = out.logits[:, -1].to(copy=True, dtype=torch.float32)
                next_pos = next_pos + 1
        return self.completions(batch, input_ids[:, width:].tolist(), states, eos)

    def check(self, step: int, batch: list[Row], states: list[RowState], unfinished: torch.Tensor, hf: Any, cache: Any,
              mask: torch.Tensor, starts: torch.Tensor, next_pos: torch.Tensor) -> dict[int, int]:
        """Classify every row, act on the watched ones. Returns {row: generated tokens withdrawn}."""
        import torch

        seen = mask.bool()
        if self.window is not None:  # of the assistant text, only the last `window` kept tokens
            columns = torch.arange(mask.shape[1], device=mask.device)
            content = seen & (columns[None, :] >= starts[:, None])
            from_end = content.flip(-1).cumsum(-1).flip(-1)
            seen = seen & (~content | (from_end <= self.window))
        cls_mask = torch.cat([seen.long(), mask.new_ones((len(batch), 1))], dim=-1)
        p = self.classifier(Check(hf, cache, cls_mask, next_pos[:, None], step, batch)).float().cpu().tolist()
        withdrawn = {}
        for b, state in enumerate(states):
            if not state.watching or not unfinished[b]:
                continue
            state.checks.append((step, p[b]))
            if p[b] <= self.steering.threshold:
                state.safe_until = step
                continue
            if steered_at(state.checks, self.steering) != step:  # a flip not yet held for `hold` checks
                continue
            at = 0 if step == 0 else state.safe_until
            kept = at - len([i for i in state.removed if i < at])
            text = (self.steering.separator if kept else "") + self.steering.refusal
            state.forced = self.model.tokenizer(text, add_special_tokens=False).input_ids
            state.removed |= set(range(at, step))
            state.watching = False
            state.action = {"refused_at": at, "detected_at": step, "withdrawn": step - at, "p_malicious": round(p[b], 4),
                            "inserted": text}
            if step > at:
                withdrawn[b] = step - at
        return withdrawn

    def completions(self, batch: list[Row], generated: list[list[int]], states: list[RowState], eos: int) -> list[Completion]:
        tok = self.model.tokenizer
        meta = "meta" in Completion.model_fields  # proposed field; until it exists decisions go to the log only
        out, lines = [], []
        for row, ids, state in zip(batch, generated, states, strict=True):
            ids = [t for i, t in enumerate(ids) if i not in state.removed]
            stop = ids.index(eos) if eos in ids else None
            ids = ids[:stop] if stop is not None else ids
            decision = state.decision()
            for sample in row.samples:
                extra = {"meta": {"safety_signal": decision}} if meta else {}
                out.append(Completion(request=row.request, sample=sample, text=tok.decode(ids, skip_special_tokens=True),
                                      prompt_tokens=len(row.prompt), completion_tokens=len(ids),
                                      finish_reason="stop" if stop is not None else "length", engine=self.name,
                                      model=self.model.id, **extra))
                key = f"{row.request.key}:{sample}"
                self.decisions[key] = decision
                lines.append(json.dumps({"request": row.request.key, "behavior": row.request.behavior_id, "sample": sample,
                                         "attack": row.request.attack, "params": row.request.params, **decision}))
        if self.decisions_log is not None:
            self.decisions_log.parent.mkdir(parents=True, exist_ok=True)
            with self.decisions_log.open("a") as f:
                f.write("".join(line + "\n" for line in lines))
        return out
