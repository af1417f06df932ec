"""Every cached model and every run keeps its key across refactors: the identities the keys hash are pinned.

A trained model's cache key hashes its base card's id, its recipe's describe() and its training data; a run's
hash (`Record.run`) hashes the model card's id, the defense's and the engine's describe(). None of them may
change when code moves (these values were computed on the tree before harness/ moved into rooms, and again
after: identical). A deliberate change of a recipe bumps `harness.types.RECIPE_VERSION` and updates this table.
"""

from __future__ import annotations

import pytest

from harness import config
from harness.config import instantiate
from harness.types import content_hash

PINNED = {
    "defense/constrained_sft": "662ee80e534abaf3",
    "defense/constrained_sft_anchored": "8374ae76b5455584",
    "defense/deep_alignment": "2eec407dfb2c9fd2",
    "defense/guard_filter": "f0e949f275adbac9",
    "defense/none": "d10c609bbb95c8e9",
    "defense/perplexity_filter": "fe7fa491977deaa9",
    "defense/safety_mix": "3abe279a6ba68257",
    "defense/safety_sft": "1c10e8b4f8ad6cf6",
    "defense/safety_sft_broad": "9b440969a61c4891",
    "defense/safety_sft_ci": "15ec4fcd50efb711",
    "defense/safety_sft_contrast": "4d34e9ef9352c00f",
    "defense/smoothllm": "04275eb3f9074dff",
    "defense/system_prompt": "6daf8931fd855e15",
    "engine/auto": "8d500d637c1a3e32",
    "engine/hf": "8d500d637c1a3e32",
    "engine/openai": "39eb7343fd6c146e",
    "engine/vllm": "34656b7fab969956",
    "model/llama2": "llama2@bcde6aa7b10b9572",
    "model/smollm2": "smollm2@dde56b6070b998e2",
    "model/smollm2-aligned": "smollm2-aligned@b7a24d0ff1a04343",
    "model/smollm2-aligned-broad": "smollm2-aligned-broad@a96ddd42a8853ce5",
    "model/smollm2-aligned-ci": "smollm2-aligned-ci@1a75af8e50d79785",
    "model/smollm2-aligned-contrast": "smollm2-aligned-contrast@a1d09461c9a9bfac",
    "model/smollm2-deep": "smollm2-deep@cf388ced3751ffc3",
    "model/tiny": "tiny@15f9868150f5138b",
}


def identity(kind: str, name: str, cache: str) -> str:
    if kind == "model":
        return instantiate(config.compose([f"model={name}", f"cache_dir={cache}"]).model).id
    if kind == "defense":
        return content_hash(instantiate(config.compose([f"defense={name}"]).defense).describe())
    tiny = instantiate(config.compose(["model=tiny", f"cache_dir={cache}"]).model)
    return content_hash(instantiate(config.compose([f"engine={name}"]).engine)(tiny).describe())


@pytest.mark.parametrize("what", sorted(PINNED))
def test_the_keys_of_cached_models_and_runs_are_pinned(what, tmp_path):
    kind, name = what.split("/")
    assert identity(kind, name, str(tmp_path)) == PINNED[what]
