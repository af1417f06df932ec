"""transformers engine: batched generation with per-row sampling, so requests with different
decoding parameters share one batch, and every shared prompt encoded once.

Every (request, sample) is one row. Rows are grouped by `max_tokens` (a batch never runs to
another group's budget), sorted by prompt length and then by prompt (identical prompts sit
together) and cut into batches of `batch_size` rows. A greedy request is generated once and
its row stands for all n samples (greedy samples are identical).

Encode once, sample many (`prefix_reuse`, on by default): a batch's distinct prompts are
encoded once each, and the rows that continue a prompt (a decoding sweep's configurations,
the n samples of a request, SmoothLLM copies or behaviors whose prompts coincide) start from a
copy of its KV cache. The batch's common prefix (a chat template's system prompt) is encoded
once for all its prompts first; each prompt's remainder follows it, left-padded to the
longest remainder, the padding masked and the positions counted without it, so every token
sits at the position it has unpadded. The decoding loop is the engine's own and keeps
sharing after the prompt: rows that have drawn the same tokens so far are one sequence of the
cache (one forward step serves them all: a sweep's greedy, top-k 1 and low-temperature or
low-top-p rows often agree for many tokens); when their draws differ the sequence forks
(`Cache.reorder_cache` copies the parent's cache), and a row leaves when it emits EOS or
reaches its `max_tokens`. With `prefix_reuse=false` each row is encoded on its own and
`generate` runs the batch (the engine before this change); greedy outputs are the same
either way (tests/engine).

Per-row sampling: a sampled row's token is drawn with its own temperature, top-k and top-p
(in transformers' order: temperature, then top-k, then top-p on what is left) and a uniform
number from its own seeded stream (`RowSampler`; under `generate` a logits processor turns
the draw into a one-hot, so the greedy step picks it). The stream's seed is a hash of the
request and the sample index, so a sample does not depend on which other rows share its
batch, and a re-run reproduces it. Greedy rows take the argmax of the float32 logits, as
greedy `generate` does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    cosmetic = frozenset({"batch_size", "progress", "stage", "prefix_reuse"})
    batch_size: int = Field(64, ge=1)
    progress: bool = True
    stage: str = "generating"  # the progress line's name: generating | sampling answers | judging
    prefix_reuse: bool = True  # encode each shared prompt once (same outputs, less time; see the module doc)


class HFEngine(Engine):
    name = "hf"

    Settings = HFSettings

    def batches(self, requests: Sequence[Request]) -> Iterator[list[Row]]:
        rows = [row for r in requests for row in rows_of(r, self.model.prompt_ids(r.messages, r.prefill))]
        rows.sort(key=lambda row: (row.request.sampling.max_tokens, -len(row.prompt), row.prompt))
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
        generated = self.decode(batch) if self.prefix_reuse else self.decode_with_generate(batch)
        return self.to_completions(batch, generated)

    def to_completions(self, batch: list[Row], generated: list[list[int]]) -> list[Completion]:
        """One completion per (row, sample): the text before the first EOS (the EOS and anything after dropped)."""
        tok = self.model.tokenizer
        completions = []
        for row, ids in zip(batch, generated, strict=True):
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

    def decode_with_generate(self, batch: list[Row]) -> list[list[int]]:
        """Every row encoded on its own (left padding) and `generate` over the batch; the generated ids per row."""
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
        return out[:, width:].tolist()

    def decode(self, batch: list[Row]) -> list[list[int]]:
        """Encode once, sample many: each distinct prompt encoded once (after the batch's common prefix,
        encoded once for all); rows continuing the same tokens stay one sequence of the cache (one
        forward for all of them) until their draws differ; a row leaves at EOS or its `max_tokens`.
        The generated ids per row (ending with the EOS when it stopped)."""
        import torch

        from harness.engine.attention import use_sdpa_gqa

        hf, tok = self.model.hf, self.model.tokenizer
        use_sdpa_gqa(hf)
        eos, device = tok.eos_token_id, hf.device
        generated: list[list[int]] = [[] for _ in batch]
        with torch.inference_mode():
            cache, logits, mask, positions, sequence = self.encode(batch)
            chooser = RowChooser(batch, device)
            budget = torch.tensor([row.request.sampling.max_tokens for row in batch], device=device)
            running = torch.arange(len(batch), device=device)  # batch index of each row still going
            vocab, step = logits.shape[-1], 0
            while True:
                tokens = chooser(logits[sequence], running, step)  # each row draws from its sequence's logits
                for b, token in zip(running.tolist(), tokens.tolist(), strict=True):
                    generated[b].append(token)
                step += 1
                going = (tokens != eos) & (budget[running] > step)
                if not bool(going.any()):
                    break
                running, tokens, sequence = running[going], tokens[going], sequence[going]
                # the next sequences: one per (sequence, token) drawn; rows that drew alike stay together
                pairs, sequence = torch.unique(sequence * vocab + tokens, return_inverse=True)
                parent, tokens = pairs // vocab, pairs % vocab
                if len(parent) != len(positions) or bool((parent != torch.arange(len(parent), device=device)).any()):
                    cache.reorder_cache(parent)  # forks copy their parent's cache, finished sequences leave
                    positions = positions[parent]
                    mask = mask[parent] if mask is not None else None
                if mask is not None:
                    mask = torch.cat([mask, mask.new_ones((len(parent), 1))], dim=-1)
                positions = positions + 1
                out = hf(input_ids=tokens[:, None], attention_mask=mask, position_ids=positions[:, None],
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
                logits = out.logits[:, -1].to(dtype=torch.float32)
        return generated

    def encode(self, batch: list[Row]) -> tuple[Any, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Every distinct prompt of the batch encoded once: the KV cache, next-token logits (float32),
        attention mask (None when nothing is padded) and last position of each prompt, and each row's
        prompt index."""
        import torch

        from harness.engine.kv_cache import growing_cache

        hf, pad, device = self.model.hf, self.model.tokenizer.pad_token_id, self.model.hf.device
        prompts = list(dict.fromkeys(tuple(row.prompt) for row in batch))
        which = {prompt: i for i, prompt in enumerate(prompts)}
        cache = growing_cache(hf)  # grows in place: no copy of the whole cache per step
        # the common prefix, encoded once; every prompt keeps at least one token of its own (its logits)
        shared = 0 if len(prompts) == 1 else min(len(os.path.commonprefix(prompts)), min(map(len, prompts)) - 1)
        if shared:
            hf(input_ids=torch.tensor([prompts[0][:shared]], device=device), past_key_values=cache, use_cache=True,
               logits_to_keep=1)
            cache.reorder_cache(torch.zeros(len(prompts), dtype=torch.long, device=device))  # one copy per prompt
        rest = [prompt[shared:] for prompt in prompts]
        width = max(map(len, rest))
        ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in rest], device=device)
        mask = torch.tensor([[1] * shared + [0] * (width - len(r)) + [1] * len(r) for r in rest], device=device)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)[:, shared:]
        padded = not bool(mask.all())  # `generate` drops an all-ones mask; so do we: same kernels, same numbers
        out = hf(input_ids=ids, attention_mask=mask if padded else None, position_ids=positions, past_key_values=cache,
                 use_cache=True, logits_to_keep=1)
        sequence = torch.tensor([which[tuple(row.prompt)] for row in batch], device=device)
        return cache, out.logits[:, -1].to(dtype=torch.float32), mask if padded else None, positions[:, -1], sequence


class RowChooser:
    """The next token of every running row: the argmax for greedy rows, a draw (`draw`) from the row's own
    seeded stream for sampled ones (the same uniform numbers `RowSampler` uses under `generate`)."""

    def __init__(self, batch: Sequence[Row], device: torch.device | str = "cpu") -> None:
        import torch

        self.sampled = torch.tensor([not row.request.sampling.greedy for row in batch], device=device)
        self.sampler = RowSampler(batch, 0, max(row.request.sampling.max_tokens for row in batch), device) \
            if bool(self.sampled.any()) else None
        # batch index -> the sampler's row
        self.slot = torch.cumsum(self.sampled.long(), 0) - 1

    def __call__(self, logits: torch.Tensor, running: torch.Tensor, step: int) -> torch.Tensor:
        tokens = logits.argmax(-1)
        if self.sampler is None:
            return tokens
        sampled = self.sampled[running]
        if bool(sampled.any()):
            s, slot = self.sampler, self.slot[running[sampled]]
            tokens[sampled] = draw(logits[sampled], s.temperature[slot], s.top_k[slot], s.top_p[slot], s.uniform[slot, step])
        return tokens


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
    # difference (another batch, another padding) then cannot reorder the candidates. The candidates
    # sorted by token id and summed in that order give the same cumulative masses as a sum over the whole
    # vocabulary (the tokens between them add exact zeros), over `width` columns instead of the vocabulary's.
    order = ids.argsort(dim=-1)
    by_id = ids.gather(1, order)
    cdf = probs.masked_fill(~keep, 0.0).gather(1, order).cumsum(-1)
    return by_id.gather(1, pick(cdf, uniform)[:, None]).squeeze(1), complete


def pick(cdf: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Inverse CDF: the first index whose cumulative mass exceeds uniform * total (never a
    zero-probability index: at most the first index where the total is reached)."""
    import torch

    threshold = uniform * cdf[:, -1]
    return torch.minimum((cdf <= threshold[:, None]).sum(-1), cdf.argmax(-1))
