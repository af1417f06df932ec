"""transformers engine: batched `generate` with left padding, length-sorted batches and
per-row sampling, so requests with different decoding parameters share one batch.

Every (request, sample) is one row. Rows are grouped by `max_tokens`, sorted by prompt
length (a batch pads little) and cut into batches of `batch_size` rows. A greedy request is
generated once and its row stands for all n samples (greedy samples are identical).

Per-row sampling (`RowSampler`): `generate` runs greedily and a logits processor turns each
sampled row's scores into a one-hot on the token it draws, applying that row's own
temperature, top-k and top-p (in transformers' order: temperature, then top-k, then top-p
on what is left) and a uniform number from that row's own seeded stream. The stream's seed
is a hash of the request and the sample index, so a sample does not depend on which other
rows share its batch, and a re-run reproduces it. Greedy rows are left untouched: their
outputs are those of plain greedy `generate`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import Field

from harness.engine.base import Engine
from harness.settings import Settings
from harness.types import Completion, Request, content_hash
from harness.util.progress import progress

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Top-p rows look for their nucleus among the 1,024 most likely tokens first, then 8,192; a
# row whose nucleus is wider still (a flat distribution) sorts the whole vocabulary. The drawn
# token is the same either way; this only avoids a full sort at every step.
NUCLEUS_STAGES = (1024, 8192)


@dataclass(frozen=True)
class Row:
    """One sequence to generate: a request, the sample indices it yields, its prompt ids."""

    request: Request
    samples: tuple[int, ...]
    prompt: list[int]

    @property
    def seed(self) -> int:
        """The row's sampling seed: a hash of the request (its sampling seed included) and the sample index."""
        return int(content_hash({"request": self.request.key, "sample": self.samples[0]}), 16)


def rows_of(request: Request, prompt: list[int]) -> list[Row]:
    n = request.sampling.n
    if request.sampling.greedy:
        return [Row(request, tuple(range(n)), prompt)]
    return [Row(request, (s,), prompt) for s in range(n)]


class HFSettings(Settings):
    cosmetic = frozenset({"batch_size", "progress", "stage"})
    batch_size: int = Field(32, ge=1)
    progress: bool = True
    stage: str = "generating"  # the progress line's name: generating | sampling answers | judging


class HFEngine(Engine):
    name = "hf"

    Settings = HFSettings

    def batches(self, requests: Sequence[Request]) -> Iterator[list[Row]]:
        rows = [row for r in requests for row in rows_of(r, self.model.prompt_ids(r.messages, r.prefill))]
        rows.sort(key=lambda row: (row.request.sampling.max_tokens, -len(row.prompt)))
        start = 0
        while start < len(rows):
            budget = rows[start].request.sampling.max_tokens
            stop = start
            while stop < len(rows) and stop - start < self.batch_size and rows[stop].request.sampling.max_tokens == budget:
                stop += 1
            yield rows[start:stop]
            start = stop

    def stream(self, requests: Sequence[Request]) -> Iterator[list[Completion]]:
        total = sum(r.sampling.n for r in requests)
        _ = self.model.hf  # load the weights (a trained card builds them here, with its own progress) before counting
        with progress(total=total, desc=f"{self.stage} [{self.model.name}]", unit="seq", disable=not self.progress) as bar:
            for batch in self.batches(requests):
                out = self.generate_batch(batch)
                bar.update(len(out))
                yield out

    def generate_batch(self, batch: list[Row]) -> list[Completion]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        model, tok = self.model.hf, self.model.tokenizer
        pad = tok.pad_token_id
        width = max(len(row.prompt) for row in batch)
        max_tokens = batch[0].request.sampling.max_tokens
        input_ids = torch.tensor([[pad] * (width - len(row.prompt)) + row.prompt for row in batch])
        mask = torch.tensor([[0] * (width - len(row.prompt)) + [1] * len(row.prompt) for row in batch])
        config = GenerationConfig(max_new_tokens=max_tokens, do_sample=False, pad_token_id=pad, eos_token_id=tok.eos_token_id)
        processors = LogitsProcessorList()
        if any(not row.request.sampling.greedy for row in batch):
            processors.append(RowSampler(batch, width, max_tokens, model.device))
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                generation_config=config, logits_processor=processors,
            )
        completions = []
        for row, ids in zip(batch, out[:, width:].tolist(), strict=True):
            stop = ids.index(tok.eos_token_id) if tok.eos_token_id in ids else None
            ids = ids[:stop] if stop is not None else ids
            text = tok.decode(ids, skip_special_tokens=True)
            for sample in row.samples:
                completions.append(
                    Completion(
                        request=row.request,
                        sample=sample,
                        text=text,
                        prompt_tokens=len(row.prompt),
                        completion_tokens=len(ids),
                        finish_reason="stop" if stop is not None else "length",
                        engine=self.name,
                        model=self.model.id,
                    )
                )
        return completions


class RowSampler:
    """A logits processor that samples each non-greedy row with its own parameters and RNG.

    It returns, for a sampled row, scores that are -inf except 0 on the drawn token, so the
    greedy step of `generate` picks exactly that token; greedy rows pass through unchanged.
    """

    def __init__(self, batch: Sequence[Row], width: int, max_tokens: int, device: torch.device | str = "cpu") -> None:
        import torch

        sampled = [i for i, row in enumerate(batch) if not row.request.sampling.greedy]
        params = [batch[i].request.sampling for i in sampled]
        self.width = width
        self.rows = torch.tensor(sampled, dtype=torch.long, device=device)
        self.temperature = torch.tensor([s.temperature for s in params], dtype=torch.float32, device=device)
        self.top_k = torch.tensor([s.top_k for s in params], dtype=torch.long, device=device)
        self.top_p = torch.tensor([s.top_p for s in params], dtype=torch.float64, device=device)
        # one uniform number per row and step, from the row's own seeded stream
        self.uniform = torch.stack([
            torch.rand(max_tokens, generator=torch.Generator().manual_seed(batch[i].seed), dtype=torch.float64)
            for i in sampled
        ]).to(device)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.width
        tokens = draw(scores[self.rows].float(), self.temperature, self.top_k, self.top_p, self.uniform[:, step])
        out = scores.clone()
        out[self.rows] = float("-inf")
        out[self.rows, tokens] = 0.0
        return out


def draw(logits: torch.Tensor, temperature: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor,
         uniform: torch.Tensor) -> torch.Tensor:
    """One token per row: softmax(logits / temperature), restricted to the row's top-k tokens
    (0 = all) and then to its top-p nucleus (1.0 = all), sampled by inverse CDF at `uniform`
    over the kept tokens in vocabulary order."""
    import torch

    logits = logits / temperature[:, None]
    tokens = torch.empty(len(logits), dtype=torch.long, device=logits.device)
    full = (top_k == 0) & (top_p >= 1.0)
    if full.any():  # plain temperature sampling: inverse CDF over the vocabulary in index order
        probs = torch.softmax(logits[full], dim=-1).double()
        tokens[full] = pick(probs.cumsum(-1), uniform[full])
    pending = (~full).nonzero().squeeze(1)
    vocab = logits.shape[-1]
    for stage in (*NUCLEUS_STAGES, vocab):  # widen the candidates until every nucleus fits
        if not len(pending):
            break
        k = top_k[pending].clamp(max=vocab)
        want = torch.where(k > 0, k, torch.full_like(k, min(stage, vocab)))
        chosen, complete = nucleus(logits[pending], k, want, top_p[pending], uniform[pending], int(want.max()))
        tokens[pending[complete]] = chosen[complete]
        pending = pending[~complete]
    return tokens


def nucleus(logits: torch.Tensor, k: torch.Tensor, want: torch.Tensor, top_p: torch.Tensor, uniform: torch.Tensor,
            width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample among each row's `want` most likely tokens (its top-k when k > 0), keeping the
    top-p nucleus. Returns the tokens and, per row, whether `want` candidates held the whole
    nucleus (always true with top-k; the caller re-runs the others with more candidates)."""
    import torch

    values, ids = logits.topk(width, dim=-1, sorted=True)
    position = torch.arange(width, device=logits.device)[None, :]
    inside = position < want[:, None]
    # top-k renormalises over the k kept tokens; without top-k the nucleus is taken from the full softmax
    in_top_k = torch.where(k[:, None] > 0, position < k[:, None], torch.ones_like(inside))
    log_norm = torch.where(
        k > 0,
        values.masked_fill(~in_top_k, float("-inf")).logsumexp(-1),
        logits.logsumexp(-1),
    )
    probs = (values - log_norm[:, None]).exp().double().masked_fill(~inside, 0.0)
    before = probs.cumsum(-1) - probs  # mass of the more likely tokens
    keep = inside & ((before < top_p[:, None]) | (position == 0))
    complete = (k > 0) | (probs.sum(-1) >= top_p) | (want >= logits.shape[-1])
    # draw among the kept tokens in vocabulary order, not likelihood order: a tiny numerical
    # difference (another batch, another padding) then cannot reorder the candidates
    dense = torch.zeros(logits.shape, dtype=torch.float64, device=logits.device)
    dense.scatter_(1, ids, probs.masked_fill(~keep, 0.0))
    return pick(dense.cumsum(-1), uniform), complete


def pick(cdf: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Inverse CDF: the first index whose cumulative mass exceeds uniform * total (never a
    zero-probability index: at most the first index where the total is reached)."""
    import torch

    threshold = uniform * cdf[:, -1]
    return torch.minimum((cdf <= threshold[:, None]).sum(-1), cdf.argmax(-1))
