"""A tiny random-weight Llama with a real tokenizer: for tests and fast smoke runs.

Its outputs are gibberish, but it exercises every code path (chat template, prefill,
batching, training) in well under a second per call on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.model.base import Model
from harness.types import content_hash
from harness.util.cache import cached_folder


class TinyModel(Model):
    def __init__(
        self,
        tokenizer_from: Model,
        hidden_size: int = 64,
        num_layers: int = 2,
        num_heads: int = 2,
        num_kv_heads: int | None = None,  # fewer than num_heads: grouped-query attention, as most chat models
        intermediate_size: int = 128,
        seed: int = 0,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.tokenizer_from = tokenizer_from
        self.arch = {
            "hidden_size": hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "num_key_value_heads": num_kv_heads or num_heads,
            "intermediate_size": intermediate_size,
            "seed": seed,
        }

    def source(self) -> dict[str, Any]:
        return {"tiny_llama": self.arch, "tokenizer": self.tokenizer_from.source()}

    def resolve(self) -> Path:
        return cached_folder(self.cache_dir / "models", f"{self.name}-{content_hash(self.source())}", self._build)

    def _build(self, out: Path) -> None:
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tok = AutoTokenizer.from_pretrained(self.tokenizer_from.tokenizer_folder())
        arch = dict(self.arch)
        torch.manual_seed(arch.pop("seed"))
        config = LlamaConfig(
            vocab_size=len(tok),
            max_position_embeddings=2048,
            tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            **arch,
        )
        model = LlamaForCausalLM(config)
        model.generation_config.eos_token_id = tok.eos_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
        model.save_pretrained(out)
        tok.save_pretrained(out)
