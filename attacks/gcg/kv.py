"""Key/value caches from saved per-layer tensors.

GCG re-scores hundreds of suffixes that share everything before the position they change:
the template and query always, and the suffix tokens before the swapped one. Those keys and
values are computed once (batch 1) and handed to every candidate batch as an expanded view,
so no candidate recomputes them.

Works for attention-only decoders whose cache layers hold `keys`/`values`
(transformers' `DynamicCache`): Llama, Mistral, Qwen, Gemma, ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    import torch
    from transformers import DynamicCache, PretrainedConfig

KV = list[tuple["torch.Tensor", "torch.Tensor"]]  # per layer: keys, values [batch, heads, positions, head_dim]


def tensors(cache) -> KV:
    """The per-layer key/value tensors of a cache a forward pass returned, detached."""
    layers = getattr(cache, "layers", None)
    if not layers or not all(hasattr(layer, "keys") and hasattr(layer, "values") for layer in layers):
        raise HarnessError(f"attack=gcg needs a key/value attention cache; this model returned {type(cache).__name__}")
    return [(layer.keys.detach(), layer.values.detach()) for layer in layers]


def shared(kv: KV, length: int, batch: int, config: PretrainedConfig) -> DynamicCache:
    """A fresh cache holding the first `length` positions of batch-1 `kv`, repeated over `batch` rows."""
    from transformers import DynamicCache

    data = [(k[:, :, :length].expand(batch, -1, -1, -1), v[:, :, :length].expand(batch, -1, -1, -1)) for k, v in kv]
    return DynamicCache(ddp_cache_data=data, config=config)


def row(cache, index: int, config: PretrainedConfig) -> DynamicCache:
    """A fresh batch-1 cache holding one row of `cache`."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=[(k[index : index + 1], v[index : index + 1]) for k, v in tensors(cache)], config=config)
