"""Directional ablation (Arditi et al. 2024): a direction projected out of every layer's residual stream.

`ablate(hf, r)` registers forward hooks on a loaded transformers model that replace every write to
the residual stream x by x - (x . r) r for a unit vector r: each decoder layer's input (which covers
the embeddings), its attention output projection (`self_attn.o_proj`) and its MLP output projection
(`mlp.down_proj`). `orthogonalize(hf, r)` folds the same projection into the weights that write to
the residual stream (embeddings, o_proj, down_proj and their biases), untying a tied output
embedding first, so the saved folder gives the hooked model's outputs with any engine.

`AblatedModel` is the card of a model run with the hooks: its `hf` is a fresh copy of the base's
weights with the hooks registered (the base card's own `hf` stays untouched). It has no weights
folder of its own, so only an engine that generates through `model.hf` (engine=hf) can run it; the
orthogonalised folder (attacks/refusal_ablation: `attack.orthogonalize=true`) is for the others.
Supported: decoder layers with `self_attn.o_proj` and `mlp.down_proj` (Llama, Mistral, Qwen2, SmolLM2).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.model.base import LocalModel, Model

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

DIRECTION = "direction.pt"  # in a direction's folder: {"direction": unit vector, "layer": int, "position": int, ...}


def decoder_layers(hf: PreTrainedModel) -> list[Any]:
    """The decoder layers of a Llama-style model, each checked for the projections the ablation touches."""
    decoder = hf.get_decoder() if hasattr(hf, "get_decoder") else None
    layers = list(getattr(decoder, "layers", None) or [])
    if not layers or not all(hasattr(getattr(layer, "self_attn", None), "o_proj") and
                             hasattr(getattr(layer, "mlp", None), "down_proj") for layer in layers):
        raise HarnessError(f"{type(hf).__name__}: directional ablation needs decoder layers with self_attn.o_proj and "
                           "mlp.down_proj (Llama, Mistral, Qwen2, SmolLM2); this architecture has other names")
    return layers


def project_out(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """x minus its component along the unit vector r (last dimension)."""
    r = r.to(dtype=x.dtype, device=x.device)
    return x - (x @ r).unsqueeze(-1) * r


def ablate(hf: PreTrainedModel, direction: torch.Tensor) -> list[Any]:
    """Register the hooks (module docstring) on `hf`; returns their handles (`handle.remove()` undoes them)."""
    import torch

    r = direction.detach().float()
    r = r / torch.linalg.vector_norm(r)
    handles = []

    def on_input(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if args:
            return (project_out(args[0], r), *args[1:]), kwargs
        if "hidden_states" in kwargs:
            return args, {**kwargs, "hidden_states": project_out(kwargs["hidden_states"], r)}
        return None

    def on_output(module: Any, args: tuple, output: Any) -> Any:
        if isinstance(output, tuple):
            return (project_out(output[0], r), *output[1:])
        return project_out(output, r)

    for layer in decoder_layers(hf):
        handles.append(layer.register_forward_pre_hook(on_input, with_kwargs=True))
        handles.append(layer.self_attn.o_proj.register_forward_hook(on_output))
        handles.append(layer.mlp.down_proj.register_forward_hook(on_output))
    return handles


def orthogonalize(hf: PreTrainedModel, direction: torch.Tensor) -> None:
    """Fold the ablation into the weights, in place: W <- W - r r^T W for every matrix writing to the residual stream."""
    import torch

    layers = decoder_layers(hf)
    r = direction.detach().float()
    r = r / torch.linalg.vector_norm(r)
    with torch.no_grad():
        embed = hf.get_input_embeddings()
        out = hf.get_output_embeddings()
        if out is not None and out.weight is embed.weight:  # tied: the unembedding keeps the original matrix
            out.weight = torch.nn.Parameter(embed.weight.detach().clone())
            hf.config.tie_word_embeddings = False
            if hasattr(hf.config, "get_text_config"):
                hf.config.get_text_config().tie_word_embeddings = False
        w = embed.weight  # [vocab, d]: rows are written to the stream
        w.copy_(project_out(w.float(), r).to(w.dtype))
        for layer in layers:
            for linear in (layer.self_attn.o_proj, layer.mlp.down_proj):
                w = linear.weight  # [d, d_in]: columns are written to the stream
                w.copy_(project_out(w.float().T, r).T.to(w.dtype))
                if linear.bias is not None:
                    linear.bias.copy_(project_out(linear.bias.float(), r).to(linear.bias.dtype))


class AblatedModel(Model):
    """The base card's model with the direction in `folder`/direction.pt projected out through hooks (engine=hf)."""

    def __init__(self, base: Model, direction_folder: str | Path, name: str | None = None) -> None:
        super().__init__(name=name or f"{base.name}-ablated", dtype=base.dtype, chat_template=base.chat_template,
                         system_prompt=base.system_prompt, safety_system_prompt=base.safety_system_prompt,
                         trust_remote_code=base.trust_remote_code, cache_dir=base.cache_dir, device=base.device,
                         description=f"{base.name} with a direction ablated through hooks")
        self.base = base
        self.direction_folder = Path(direction_folder)

    def source(self) -> dict[str, Any]:
        return {"base": self.base.id, "ablated": self.direction_folder.name}  # the folder name is the direction's key

    def resolve(self) -> Path:
        raise HarnessError(f"model {self.name!r} ablates its direction through forward hooks on the HF weights: only "
                           "engine=hf can run it; for another engine set attack.orthogonalize=true (a model folder "
                           "with the direction folded into its weights)")

    def tokenizer_folder(self) -> Path:
        return self.base.tokenizer_folder()

    def local_folder(self) -> Path | None:
        return self.direction_folder  # holds trained_prompts.json: the base's and the direction's prompts

    @cached_property
    def context_length(self) -> int | None:
        return self.base.context_length

    def direction(self) -> torch.Tensor:
        import torch

        return torch.load(self.direction_folder / DIRECTION, weights_only=True)["direction"]

    @cached_property
    def hf(self) -> PreTrainedModel:
        """A fresh copy of the base's weights, with the hooks registered."""
        copy = LocalModel(self.base.folder, name=self.base.name, dtype=self.base.dtype, device=self.device,
                          trust_remote_code=self.base.trust_remote_code, cache_dir=self.cache_dir)
        model = copy.hf
        model._harness_ablation = ablate(model, self.direction())  # the handles live as long as the model
        return model
