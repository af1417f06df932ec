"""Attention for scoring GCG candidates with the bf16 model copy: two batched matmuls over grouped heads.

Candidate scoring runs many short query blocks (a candidate's changed suffix tokens, the template and the
target, then the target tokens of each pruning stage, 1-4 at a time) against a cached prompt of ~100 keys.
PyTorch's fused CPU attention kernel is slow on those shapes in bf16: 500 rows x 1 query x 100 keys took
28 ms against 2.6 ms for the two matmuls below, 100 rows x 4 queries 2.7 ms against 1.0 ms (2 cores,
AVX512-BF16, median of 10). The softmax runs in float32. Registered as the attention implementation
`gqa_matmul` and set only on the scorer's own bf16 copy (its rounding differs from the fused kernel's,
which is why the engines and the float32 model keep `sdpa_gqa`). Under autograd, off the CPU, and for
anything but a plain or boolean/additive-masked call it hands over to `sdpa_gqa`.
"""

from __future__ import annotations

from typing import Any

NAME = "gqa_matmul"
UNSUPPORTED = ("position_bias", "cache", "s_aux", "softcap", "sliding_window")


def gqa_matmul_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                       scaling: float | None = None, is_causal: bool | None = None, **kwargs: Any) -> tuple[Any, None]:
    import torch

    from harness.engine.attention import sdpa_gqa_forward

    batch, heads, q_len, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    fused = (query.device.type != "cpu" or torch.is_grad_enabled() or dropout or heads % kv_heads
             or kwargs.get("output_attentions") or any(kwargs.get(name) is not None for name in UNSUPPORTED)
             or (attention_mask is None and q_len > 1))  # unmasked blocks: the fused kernel's causal handling
    if fused:
        return sdpa_gqa_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                is_causal=is_causal, **kwargs)
    groups = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    scores = torch.matmul(query.reshape(batch, kv_heads, groups * q_len, dim), key.transpose(-1, -2))
    scores = scores.view(batch, kv_heads, groups, q_len, kv_len).float() * scale
    if attention_mask is not None:
        mask = attention_mask[:, :, None, :, :kv_len]  # [batch or 1, 1, 1, q, kv] (cropped as transformers' sdpa does)
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
    probs = torch.softmax(scores, dim=-1).to(value.dtype).view(batch, kv_heads, groups * q_len, kv_len)
    out = torch.matmul(probs, value).view(batch, heads, q_len, dim)
    return out.transpose(1, 2).contiguous(), None


def use_gqa_matmul(hf: Any) -> None:
    """Switch a model (the scorer's own copy) that uses `sdpa` or `sdpa_gqa` to `gqa_matmul`."""
    from harness.engine.attention import NAME as SDPA_GQA
    from harness.engine.attention import switch_attention

    switch_attention(hf, NAME, gqa_matmul_forward, replaces=("sdpa", SDPA_GQA))
