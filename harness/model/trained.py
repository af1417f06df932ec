"""A model card for a model the harness trains itself: a base card plus a training recipe
(a training defense such as safety_sft). Resolving it trains once, then reuses the cache.

    python -m harness model=smollm2-aligned     # builds the aligned model on first use
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.model.base import Model

if TYPE_CHECKING:  # a recipe is any training defense; the card only calls its harden()
    from harness.defense import Defense

log = logging.getLogger(__name__)


class TrainedModel(Model):
    def __init__(self, name: str, base: Model, recipe: Defense, description: str = "") -> None:
        super().__init__(name=name, dtype=base.dtype, chat_template=base.chat_template, system_prompt=base.system_prompt,
                         safety_system_prompt=base.safety_system_prompt, trust_remote_code=base.trust_remote_code,
                         cache_dir=base.cache_dir, device=base.device, description=description)
        self.base = base
        self.recipe = recipe

    def source(self) -> dict[str, Any]:
        return {"base": self.base.id, "recipe": self.recipe.describe()}

    def resolve(self) -> Path:
        log.info("model %s: %s after defense %s (trained on first use, then reused from %s)", self.name, self.base.name,
                 self.recipe.name, self.cache_dir / "models")
        return self.recipe.harden(self.base).folder

    def local_folder(self) -> Path | None:
        return self.folder  # trained on first use, then read from the cache

    def tokenizer_folder(self) -> Path:
        return self.base.tokenizer_folder()  # training never changes the tokenizer
