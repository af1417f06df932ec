"""Model cards and the handle every plugin uses to reach a model.

A card (`conf/model/*.yaml`) says where weights come from (hub id + pinned revision, a
local folder, a packaged GGUF, a model the harness trained) and how to talk to the model
(chat template, system prompt, dtype). The subclasses differ only in how they produce a
local Hugging Face folder (`resolve`); tokenizer, weights and prompt rendering are shared.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError, ModelUnavailable, choices
from harness.types import Message, content_hash

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16", "auto")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@=-]*")
CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def default_cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "harness"))


class Model:
    """A model card plus lazily loaded tokenizer and weights.

    Subclasses implement `resolve()` (return a local folder with config, weights and
    tokenizer) and `source()` (what identifies the weights, for cache keys and records).
    """

    def __init__(
        self,
        name: str,
        dtype: str = "float32",
        chat_template: str | None = None,
        system_prompt: str | None = None,
        safety_system_prompt: str | None = None,
        trust_remote_code: bool = False,
        cache_dir: str | os.PathLike | None = None,
        device: str = "auto",
        description: str = "",
    ) -> None:
        if dtype not in DTYPES:
            raise HarnessError(f"model.dtype={dtype!r} is not supported; choose one of {choices(DTYPES)}")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise HarnessError(
                f"model.name={name!r}: a model name becomes a folder name in results and the cache; use letters, "
                f"digits and . _ - + @ = (no '/', no leading '.'), e.g. model.name=my-model")
        self.name = name
        self.dtype = dtype
        self.chat_template = chat_template
        self.system_prompt = system_prompt
        self.safety_system_prompt = safety_system_prompt
        self.trust_remote_code = trust_remote_code
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.device = device
        self.description = description

    # --- what subclasses provide -------------------------------------------------
    def resolve(self) -> Path:
        raise NotImplementedError

    def source(self) -> dict[str, Any]:
        raise NotImplementedError

    # --- identity ----------------------------------------------------------------
    @property
    def id(self) -> str:
        """Stable identity of weights + prompt format; goes into records and cache keys."""
        return f"{self.name}@{content_hash(self.card())}"

    def card(self) -> dict[str, Any]:
        return {
            "source": self.source(),
            "chat_template": self.chat_template,
            "system_prompt": self.system_prompt,
            "dtype": self.dtype,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id})"

    # --- artefacts ---------------------------------------------------------------
    @cached_property
    def folder(self) -> Path:
        return self.resolve()

    def local_folder(self) -> Path | None:
        """The weights' folder when it is on disk without a download or conversion (a local folder, a model the
        harness trained); None otherwise. What the contamination guard reads a training record from."""
        return None

    def tokenizer_folder(self) -> Path:
        """Where the tokenizer lives; subclasses may provide it without the weights."""
        return self.folder

    @cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        from transformers import AutoTokenizer

        with self.loading("tokenizer"):
            tok = AutoTokenizer.from_pretrained(self.tokenizer_folder(), trust_remote_code=self.trust_remote_code)
        if self.chat_template:
            tok.chat_template = self.chat_template
        if not tok.chat_template:
            raise HarnessError(
                f"model {self.name!r} ({self.folder}) has no chat template. Give the card one: "
                f"model.chat_template='<jinja template>' (or a card whose tokenizer ships one)."
            )
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        return tok

    @contextmanager
    def loading(self, what: str) -> Iterator[None]:
        """transformers' errors for a folder it cannot read (unknown model type, remote code needed,
        broken files) as one ModelUnavailable line naming the model and the fix."""
        try:
            yield
        except (ValueError, OSError, KeyError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300].rstrip(".")
            remote = "trust_remote_code" in str(exc) or "model type" in str(exc) or isinstance(exc, KeyError)
            hint = "" if not remote else (
                " If the folder's model type needs its own code, and you trust that code, set "
                "model.trust_remote_code=true; else upgrade transformers or use a supported model.")
            raise ModelUnavailable(
                f"model {self.name!r}: transformers cannot load the {what} in {self.folder}: "
                f"{type(exc).__name__}: {first}.{hint}"
            ) from None

    @cached_property
    def torch_device(self) -> torch.device:
        import torch

        if self.device != "auto":
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    @cached_property
    def hf(self) -> PreTrainedModel:
        """The transformers model, loaded once, in eval mode on `torch_device`."""
        import torch
        from transformers import AutoModelForCausalLM

        dtype = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
        log.info("loading %s from %s (%s)", self.name, self.folder, self.dtype)
        with self.loading("weights"):
            model = AutoModelForCausalLM.from_pretrained(
                self.folder, dtype=dtype, trust_remote_code=self.trust_remote_code
            )
        return model.to(self.torch_device).eval()

    # --- prompts -----------------------------------------------------------------
    def chat(self, messages: tuple[Message, ...] | list[Message]) -> list[dict[str, str]]:
        """Messages as the template wants them, with the card's system prompt if it has one."""
        out = [m.model_dump() for m in messages]
        if self.system_prompt is not None and not any(m["role"] == "system" for m in out):
            out.insert(0, {"role": "system", "content": self.system_prompt})
        return out

    def template_text(self, messages: tuple[Message, ...] | list[Message]) -> str:
        """The chat rendered by the model's own template, assistant turn open."""
        return self.tokenizer.apply_chat_template(
            self.chat(messages), tokenize=False, add_generation_prompt=True
        )

    def prompt_ids(self, messages: tuple[Message, ...] | list[Message], prefill: str = "") -> list[int]:
        """Token ids of the rendered chat followed by the prefill's own tokens.

        The two parts are tokenized separately so the prefill is exactly the tokens the
        attack counted, never merged with the template's last token.
        """
        tok = self.tokenizer
        ids = tok(self.template_text(messages), add_special_tokens=False).input_ids
        if prefill:
            ids = ids + tok(prefill, add_special_tokens=False).input_ids
        return ids

    def first_tokens(self, text: str, k: int) -> tuple[str, int]:
        """The first k tokens of `text` in this model's tokenizer, as text, and how many there were."""
        ids = self.tokenizer(text, add_special_tokens=False).input_ids[:k]
        return self.tokenizer.decode(ids), len(ids)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    @cached_property
    def context_length(self) -> int | None:
        """Positions the model can attend over (its config's `max_position_embeddings` or the
        like), read from config.json without loading weights; None when the config names none."""
        import json

        try:
            config = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        config = {**config.get("text_config", {}), **config}
        for field in CONTEXT_FIELDS:
            if isinstance(config.get(field), int) and config[field] > 0:
                return int(config[field])
        return None


class LocalModel(Model):
    """Weights in a local Hugging Face folder (including models the harness trained)."""

    def __init__(self, path: str | os.PathLike, **kw: Any) -> None:
        super().__init__(**kw)
        self.path = Path(path)

    def source(self) -> dict[str, Any]:
        return {"path": str(self.path.resolve())}

    def local_folder(self) -> Path | None:
        return self.folder

    def resolve(self) -> Path:
        if not (self.path / "config.json").is_file():
            raise ModelUnavailable(
                f"model {self.name!r}: {self.path} is not a Hugging Face model folder (no config.json). "
                f"Pass model.path=<folder with config.json, weights and tokenizer>."
            )
        return self.path


class HubModel(Model):
    """A Hugging Face hub model at a pinned revision; `path` points at a local copy instead."""

    def __init__(
        self, hub_id: str, revision: str | None = None, path: str | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.hub_id = hub_id
        self.revision = revision
        self.path = path

    def source(self) -> dict[str, Any]:
        return {"hub_id": self.hub_id, "revision": self.revision, "path": self.path}

    def resolve(self) -> Path:
        if self.path:
            return LocalModel(self.path, name=self.name).resolve()
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "*.safetensors", "*.model", "*.jinja", "*.txt"]
        if self.trust_remote_code:
            patterns.append("*.py")
        try:
            return Path(snapshot_download(self.hub_id, revision=self.revision, allow_patterns=patterns, local_files_only=True))
        except Exception:  # not in the local hub cache: try the hub
            pass
        try:
            return Path(snapshot_download(self.hub_id, revision=self.revision, allow_patterns=patterns))
        except Exception as exc:  # noqa: BLE001 - every hub failure gets the same advice
            raise ModelUnavailable(
                f"model {self.name!r}: weights for {self.hub_id}"
                f"{' @ ' + self.revision if self.revision else ''} are not in the local Hugging Face cache "
                f"and could not be downloaded ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).\n"
                f"Either get hub access (accept the license at https://huggingface.co/{self.hub_id}, then "
                f"`hf auth login` or set HF_TOKEN) or download the weights and pass model.path=/path/to/folder."
            ) from None
