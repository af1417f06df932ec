"""transformers engine: batched `generate` with left padding and length-sorted batches.

Requests are grouped by sampling parameters (one `generate` call takes one set), sorted by
prompt length so a batch pads little, and cut into batches of `batch_size` prompts.
Sampling is seeded per batch from the request's seed, so a re-run is reproducible.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from tqdm.auto import tqdm

from harness.engine import Engine
from harness.model import Model
from harness.types import Completion, Request, Sampling

log = logging.getLogger(__name__)


class HFEngine(Engine):
    name = "hf"

    def __init__(self, model: Model, batch_size: int = 32, progress: bool = True) -> None:
        super().__init__(model)
        self.batch_size = batch_size
        self.progress = progress

    def batches(self, requests: Sequence[Request]) -> Iterator[tuple[Sampling, list[tuple[Request, list[int]]]]]:
        encoded = [(r, self.model.prompt_ids(r.messages, r.prefill)) for r in requests]
        by_sampling = itertools.groupby(sorted(encoded, key=lambda e: e[0].sampling.model_dump_json()), key=lambda e: e[0].sampling)
        for sampling, group in by_sampling:
            group = sorted(group, key=lambda e: -len(e[1]))
            for start in range(0, len(group), self.batch_size):
                yield sampling, group[start : start + self.batch_size]

    def stream(self, requests: Sequence[Request]) -> Iterator[list[Completion]]:
        total = sum(r.sampling.n for r in requests)
        with tqdm(total=total, desc=f"generate [{self.model.name}]", unit="seq", disable=not self.progress) as bar:
            for sampling, batch in self.batches(requests):
                out = self.generate_batch(sampling, batch)
                bar.update(len(out))
                yield out

    def generate_batch(self, sampling: Sampling, batch: list[tuple[Request, list[int]]]) -> list[Completion]:
        import torch
        from transformers import GenerationConfig

        model, tok = self.model.hf, self.model.tokenizer
        pad = tok.pad_token_id
        width = max(len(ids) for _, ids in batch)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for _, ids in batch])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for _, ids in batch])
        config = GenerationConfig(
            max_new_tokens=sampling.max_tokens,
            num_return_sequences=sampling.n,
            pad_token_id=pad,
            eos_token_id=tok.eos_token_id,
            **sampling_kwargs(sampling),
        )
        torch.manual_seed(sampling.seed)
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device), generation_config=config
            )
        new = out[:, width:].tolist()
        completions = []
        for row, ids in enumerate(new):
            request, prompt = batch[row // sampling.n]
            stop = ids.index(tok.eos_token_id) if tok.eos_token_id in ids else None
            ids = ids[:stop] if stop is not None else ids
            completions.append(
                Completion(
                    request=request,
                    sample=row % sampling.n,
                    text=tok.decode(ids, skip_special_tokens=True),
                    prompt_tokens=len(prompt),
                    completion_tokens=len(ids),
                    finish_reason="stop" if stop is not None else "length",
                    engine=self.name,
                    model=self.model.id,
                )
            )
        return completions


def sampling_kwargs(sampling: Sampling) -> dict[str, Any]:
    if sampling.greedy:
        return {"do_sample": False}
    return {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k or None}
