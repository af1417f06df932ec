"""The HF engine's decoding kernels: grouped-query attention without repeating the cache (`sdpa_gqa`) and a KV
cache that grows in place (`GrowingLayer`) give the same outputs as transformers' own path."""

from __future__ import annotations

import pytest

from harness.engine.hf import HFEngine
from harness.model.base import Model
from harness.types import Message, Request, Sampling


@pytest.fixture(scope="module")
def gqa(smollm2_tokenizer_source, tmp_path_factory) -> Model:
    """A tiny random Llama with grouped-query attention (4 query heads, 2 to each of 2 key/value heads; head_dim 32),
    weights drawn wide so greedy continuations vary and some end on EOS."""
    from test_vllm_engine import spread_model

    from harness.model.tiny import TinyModel

    tiny = TinyModel(name="tiny-gqa", tokenizer_from=smollm2_tokenizer_source, hidden_size=128, num_heads=4,
                     num_kv_heads=2,
                     cache_dir=tmp_path_factory.mktemp("cache"))
    return spread_model(tiny, tmp_path_factory.mktemp("gqa") / "model")


def requests() -> list[Request]:
    prompts = ["Hi", "Tell me a long story about a dragon who learns to code", "What is 2+2?", "Name three colors."]
    return [Request(behavior_id=f"b{i}-{k}", messages=(Message(role="user", content=p),), prefill=prefill,
                    sampling=Sampling(max_tokens=14) if k % 2 else Sampling(temperature=1.0, top_p=0.9, max_tokens=14, n=3, seed=k))
            for i, p in enumerate(prompts) for k, prefill in enumerate(("", "Sure, here", "Sure, here is how to"))]


def test_engine_decoding_is_the_same_with_and_without_the_kernels(gqa, monkeypatch):
    """The same engine, batches and draws with transformers' SDPA and `DynamicCache` vs with `sdpa_gqa` and
    `GrowingLayer`: the same outputs, sampled rows included (greedy rows also equal `generate`'s)."""
    from transformers.cache_utils import DynamicCache

    import harness.engine.attention as attention
    import harness.engine.kv_cache as kv_cache

    assert gqa.hf.config.num_key_value_heads < gqa.hf.config.num_attention_heads
    reqs = requests()
    gqa.hf.set_attn_implementation("sdpa")  # whatever ran before
    with monkeypatch.context() as m:
        m.setattr(attention, "use_sdpa_gqa", lambda hf: None)
        m.setattr(kv_cache, "growing_cache", lambda hf: DynamicCache(config=hf.config))
        before = HFEngine(gqa, batch_size=8, progress=False).generate(reqs)
    assert gqa.hf.config._attn_implementation == "sdpa"
    fast = HFEngine(gqa, batch_size=8, progress=False).generate(reqs)
    assert gqa.hf.config._attn_implementation == "sdpa_gqa"
    assert [(c.text, c.finish_reason) for c in fast] == [(c.text, c.finish_reason) for c in before]
    sampled = [c.text for c in fast if c.request.behavior_id == "b1-2"]
    assert len(sampled) == 3 and len(set(sampled)) > 1  # samples of one prompt forked: the cache was reordered
    greedy = [r for r in reqs if r.sampling.greedy]
    reference = HFEngine(gqa, batch_size=8, progress=False, prefix_reuse=False).generate(greedy)  # `generate`
    assert [c.text for c in fast if c.request.sampling.greedy] == [c.text for c in reference]


def test_sdpa_gqa_matches_sdpa_and_hands_autograd_back(gqa):
    import torch

    from harness.engine.attention import sdpa_gqa_forward

    layer = gqa.hf.model.layers[0].self_attn
    g = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(3, h, 5, 32, generator=g) for h in (4, 2, 2))
    mask = torch.ones(3, 1, 5, 5, dtype=torch.bool).tril()
    mask[0, :, :, :2] = False
    mask[0, :, :2, 0] = True  # the padded row's first queries attend to something
    with torch.inference_mode():
        mine, _ = sdpa_gqa_forward(layer, query, key, value, mask, scaling=32 ** -0.5)
    repeated = torch.nn.functional.scaled_dot_product_attention(
        query, key.repeat_interleave(2, 1), value.repeat_interleave(2, 1), attn_mask=mask, scale=32 ** -0.5)
    assert torch.allclose(mine, repeated.transpose(1, 2), atol=1e-6)
    query.requires_grad_(True)
    out, _ = sdpa_gqa_forward(layer, query, key, value, mask, scaling=32 ** -0.5)  # autograd: transformers' path
    out.sum().backward()
    assert query.grad is not None and torch.allclose(out.detach(), mine, atol=1e-6)


def test_growing_layer_holds_what_concatenation_holds():
    import torch
    from transformers.cache_utils import DynamicLayer

    from harness.engine.kv_cache import GrowingLayer

    g = torch.Generator().manual_seed(0)
    grow, cat = GrowingLayer(), DynamicLayer()
    steps = [torch.randn(4, 2, 7, 8, generator=g)] + [torch.randn(4, 2, 1, 8, generator=g) for _ in range(70)]
    for i, kv in enumerate(steps):
        if i == 20:  # a row leaves, one forks: index_select replaces the tensors, the buffer is re-made
            for layer in (grow, cat):
                layer.reorder_cache(torch.tensor([0, 2, 2, 3]))
        if i == 40:
            for layer in (grow, cat):
                layer.reorder_cache(torch.tensor([1, 3]))
            kv = kv[:2]
        elif i > 40:
            kv = kv[:2]
        k_g, v_g = grow.update(kv, -kv)
        k_c, v_c = cat.update(kv, -kv)
        assert torch.equal(k_g, k_c) and torch.equal(v_g, v_c)
        assert grow.get_seq_length() == cat.get_seq_length()
    assert grow.room_keys.shape[-2] > grow.get_seq_length()  # it grew in place, with room to spare
