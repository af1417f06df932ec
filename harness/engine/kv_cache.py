"""A KV cache that grows in place: transformers' `DynamicLayer` concatenates every new key and value onto the
cache (`torch.cat`: a copy of the whole cache per layer per decoding step). `GrowingLayer` keeps the cache in
a buffer with room to spare, writes each step's keys and values into it and shows the filled part as a view;
it re-allocates (doubling) only when full or when something replaced its tensors (`reorder_cache` when a
sequence forks or leaves, `crop`, ...). Same values, so the same outputs (tests/engine).
"""

from __future__ import annotations

from typing import Any

from transformers.cache_utils import DynamicCache, DynamicLayer


class GrowingLayer(DynamicLayer):
    def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
        super().lazy_initialization(key_states, value_states)
        self.room_keys = self.room_values = None

    def backed(self) -> bool:
        """Whether `keys`/`values` are still the filled part of this layer's buffers."""
        room = self.room_keys
        return (room is not None and self.keys.shape[0] == room.shape[0] and self.keys.data_ptr() == room.data_ptr()
                and self.values.data_ptr() == self.room_values.data_ptr())

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        filled = self.get_seq_length()
        need = filled + key_states.shape[-2]
        if not self.backed() or need > self.room_keys.shape[-2]:
            shape = (*key_states.shape[:2], max(2 * need, need + 64), key_states.shape[-1])
            room_k, room_v = key_states.new_empty(shape), value_states.new_empty((*shape[:3], value_states.shape[-1]))
            if filled:
                room_k[:, :, :filled] = self.keys
                room_v[:, :, :filled] = self.values
            self.room_keys, self.room_values = room_k, room_v
        self.room_keys[:, :, filled:need] = key_states
        self.room_values[:, :, filled:need] = value_states
        self.keys, self.values = self.room_keys[:, :, :need], self.room_values[:, :, :need]
        return self.keys, self.values


def growing_cache(hf: Any) -> DynamicCache:
    """A `DynamicCache` for `hf` whose full-attention layers grow in place (sliding-window ones stay as they are)."""
    cache = DynamicCache(config=hf.config)
    cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
