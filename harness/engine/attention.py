"""Grouped-query attention without copying the KV cache: transformers' SDPA path repeats every cached key and
value head `num_key_value_groups` times (a copy of the whole cache per layer per step) whenever a mask is
passed on a CPU, although PyTorch's SDPA takes grouped heads itself (`enable_gqa`, torch >= 2.5). Registered as
the attention implementation `sdpa_gqa` (same masks as `sdpa`) and used by the engines' decoding: the same
outputs (bitwise on the embedded model's greedy outputs; tests/engine), and on the default job's shape
(64 prefilled AdvBench prompts, one run each at one thread beside another job: indicative) 55 -> 47 s.
Under autograd (training, GCG gradients) and off the CPU (where a masked grouped call may fall back to the
math kernel) it hands over to transformers' own SDPA function unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NAME = "sdpa_gqa"


def sdpa_gqa_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                     scaling: float | None = None, is_causal: bool | None = None, **kwargs: Any) -> tuple[Any, None]:
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    q_len, kv_len = query.shape[2], key.shape[2]
    plain = (groups == 1 or query.device.type != "cpu" or torch.is_grad_enabled() or dropout
             or kwargs.get("position_bias") is not None or kwargs.get("cache") is not None
             or kwargs.get("output_attentions")
             or (attention_mask is None and 1 < q_len < kv_len))  # transformers crops keys there: its own path
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = bool(q_len > 1 and attention_mask is None and causal)
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, scale=scaling,
                                                           is_causal=causal, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


def switch_attention(hf: Any, name: str, forward: Any, replaces: tuple[str, ...] = ("sdpa",)) -> None:
    """Switch a loaded transformers model whose attention is one of `replaces` to `forward`, registered once per
    process as `name` with SDPA's masks; other models (eager, flash) are left as they are."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if getattr(hf.config, "_attn_implementation", None) not in replaces:
        return
    if name not in AttentionInterface._global_mapping:
        AttentionInterface.register(name, forward)
        AttentionMaskInterface.register(name, sdpa_mask)
    hf.set_attn_implementation(name)


def use_sdpa_gqa(hf: Any) -> None:
    """Switch a loaded transformers model that uses `sdpa` to `sdpa_gqa`."""
    switch_attention(hf, NAME, sdpa_gqa_forward)


@contextmanager
def sdpa_gqa_within(hf: Any) -> Iterator[None]:
    """`use_sdpa_gqa` while inside, the model's own implementation again after (for code that borrows a model)."""
    before = getattr(hf.config, "_attn_implementation", None)
    use_sdpa_gqa(hf)
    try:
        yield
    finally:
        if before != getattr(hf.config, "_attn_implementation", None):
            hf.set_attn_implementation(before)
