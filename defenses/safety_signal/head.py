"""The safety-signal head: a dedicated [CLS] input vector and a benign/malicious classifier.

The [CLS] token is a learned input embedding of its own rather than a new vocabulary entry:
the effect is the same as adding a token to the tokenizer and resizing the embedding (one
trainable input row that no text maps to), but the language model's vocabulary, tokenizer and
weight file stay exactly as they were, so the LM can never emit the token, and every engine
(vLLM included) still loads the trained weights as an ordinary model.

The classifier reads the decoder's final (normed) hidden state at the [CLS] position. Both
live in `safety_signal.safetensors` next to the model's weights, with the settings they were
trained with (the attention window) in `safety_signal.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import HarnessError

WEIGHTS = "safety_signal.safetensors"
CONFIG = "safety_signal.json"
LABELS = ("benign", "malicious")


class SafetyHead(nn.Module):
    def __init__(self, hidden_size: int, window: int | None = 10) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.window = window  # how many recent assistant tokens the [CLS] sees (None = all)
        self.cls_embedding = nn.Parameter(torch.zeros(hidden_size))
        self.classifier = nn.Linear(hidden_size, len(LABELS))

    @classmethod
    def for_model(cls, hf: Any, window: int | None = 10, seed: int = 0) -> SafetyHead:
        """A fresh head for `hf`: the [CLS] vector starts at the mean input embedding (inside the
        distribution the decoder expects), the classifier at a seeded small random init."""
        emb = hf.get_input_embeddings().weight
        generator = torch.Generator().manual_seed(seed)
        head = cls(emb.shape[1], window)
        with torch.no_grad():
            head.cls_embedding.copy_(emb.detach().float().mean(0).cpu())
            bound = 1 / emb.shape[1] ** 0.5
            head.classifier.weight.copy_(torch.empty_like(head.classifier.weight).uniform_(-bound, bound, generator=generator))
            head.classifier.bias.zero_()
        return head.to(emb.device)

    def cls_inputs(self, batch: int, count: int, like: torch.Tensor) -> torch.Tensor:
        """`count` [CLS] input vectors per row: [batch, count, hidden], in `like`'s dtype and device."""
        return self.cls_embedding.to(like.dtype).expand(batch, count, -1)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., hidden] -> [..., 2] benign/malicious logits (fp32)."""
        return self.classifier(hidden.to(self.classifier.weight.dtype)).float()

    def p_malicious(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(hidden), dim=-1)[..., 1]

    # --- persistence -------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}, str(folder / WEIGHTS))
        (folder / CONFIG).write_text(json.dumps({"hidden_size": self.hidden_size, "window": self.window,
                                                 "labels": list(LABELS)}, indent=1) + "\n")

    @classmethod
    def exists(cls, folder: Path) -> bool:
        return (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file()

    @classmethod
    def load(cls, folder: Path, device: Any = "cpu", dtype: torch.dtype = torch.float32) -> SafetyHead:
        from safetensors.torch import load_file

        if not cls.exists(folder):
            raise HarnessError(f"no safety-signal head in {folder} (expected {WEIGHTS} and {CONFIG}); "
                               "train one with defense=safety_signal")
        config = json.loads((folder / CONFIG).read_text())
        head = cls(config["hidden_size"], config.get("window"))
        head.load_state_dict(load_file(str(folder / WEIGHTS)))
        return head.to(device=device, dtype=dtype).eval()
