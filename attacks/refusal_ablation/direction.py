"""The refusal direction (Arditi et al. 2024): difference of means, candidates per layer and position, selection.

- Activations: the residual stream at the input of decoder layer l (`output_hidden_states[l]`, l = 0 is
  the embeddings) at each post-instruction position: the tokens the chat template puts after the user
  turn (ChatML: `<|im_end|>`, `\\n`, `<|im_start|>`, `assistant`, `\\n`), indexed -P..-1 from the end.
- Candidates: r(l, i) = mean over harmful prompts - mean over harmless prompts, at (l, i).
- Refusal score of a prompt: log-odds of the refusal tokens at the first generated position,
  log(p_R / (1 - p_R)) with p_R = the probability mass on `refusal_tokens`.
- Selection (the paper's, on held-out training-side prompts): for each candidate, `bypass` = mean refusal
  score of the held-out harmful prompts with r ablated (hooks, every layer); `induce` = mean refusal score
  of the held-out harmless prompts with r added at layer l's input; `kl` = mean KL(unablated || ablated)
  of the held-out harmless prompts' next-token distributions. Kept: layer < `max_layer_fraction` x layers,
  induce > 0, kl < `max_kl`; chosen: the lowest bypass among those kept (all candidates when none is kept,
  which selection.json says).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.model.ablated import ablate, decoder_layers
from harness.model.base import Model
from harness.types import Message

if TYPE_CHECKING:
    import torch

PLACEHOLDER = "REFUSAL-DIRECTION-PLACEHOLDER"


def post_instruction_tokens(model: Model) -> int:
    """How many tokens the chat template puts after the user's text (before the assistant's answer)."""
    text = model.template_text((Message(role="user", content=PLACEHOLDER),))
    suffix = text.split(PLACEHOLDER, 1)[1]
    return max(1, len(model.tokenizer(suffix, add_special_tokens=False).input_ids))


def refusal_token_ids(model: Model, texts: Sequence[str]) -> list[int]:
    """The distinct first tokens of the refusal texts in the model's tokenizer."""
    return sorted({model.tokenizer(t, add_special_tokens=False).input_ids[0] for t in texts if t.strip()})


def batches(model: Model, prompts: Sequence[str], size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Left-padded (input_ids, attention_mask) of the rendered chats, `size` prompts at a time."""
    import torch

    pad = model.tokenizer.pad_token_id
    for start in range(0, len(prompts), size):
        ids = [model.prompt_ids((Message(role="user", content=p),)) for p in prompts[start:start + size]]
        width = max(map(len, ids))
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        yield input_ids.to(model.torch_device), mask.to(model.torch_device)


def mean_activations(hf: Any, model: Model, prompts: Sequence[str], positions: int, size: int) -> torch.Tensor:
    """[layers, positions, d]: the mean residual stream at each layer's input and each post-instruction position."""
    import torch

    layers = len(decoder_layers(hf))
    total = None
    with torch.no_grad():
        for input_ids, mask in batches(model, prompts, size):
            out = hf(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
            h = torch.stack([out.hidden_states[i][:, -positions:, :].double() for i in range(layers)])  # [L, B, P, d]
            part = h.sum(dim=1)
            total = part if total is None else total + part
    return (total / len(prompts)).float()


def last_logits(hf: Any, model: Model, prompts: Sequence[str], size: int) -> torch.Tensor:
    """[prompts, vocab] float32 log-probabilities of the first generated token."""
    import torch

    rows = []
    with torch.no_grad():
        for input_ids, mask in batches(model, prompts, size):
            logits = hf(input_ids=input_ids, attention_mask=mask, logits_to_keep=1).logits[:, -1, :]
            rows.append(torch.log_softmax(logits.float(), dim=-1))
    return torch.cat(rows)


def refusal_scores(logprobs: torch.Tensor, refusal: Sequence[int]) -> torch.Tensor:
    """Per prompt: log(p_R / (1 - p_R)), p_R the probability of the refusal tokens."""
    import torch

    p = logprobs[:, list(refusal)].exp().sum(dim=-1).clamp(1e-12, 1 - 1e-7)
    return torch.log(p) - torch.log1p(-p)


@contextmanager
def hooked(hf: Any, direction: torch.Tensor) -> Iterator[None]:
    handles = ablate(hf, direction)
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def added(hf: Any, layer: int, vector: torch.Tensor) -> Iterator[None]:
    """Activation addition: `vector` added to the input of decoder layer `layer` at every position."""

    def hook(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args:
            return (args[0] + vector.to(args[0].dtype), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"] + vector.to(kwargs["hidden_states"].dtype)}

    handle = decoder_layers(hf)[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def kl(p_log: torch.Tensor, q_log: torch.Tensor) -> float:
    """Mean KL(p || q) over rows of log-probabilities."""
    return float((p_log.exp() * (p_log - q_log)).sum(dim=-1).mean())


def select(hf: Any, model: Model, diffs: torch.Tensor, layers: Sequence[int], positions: Sequence[int],
           harmful_val: Sequence[str], harmless_val: Sequence[str], refusal: Sequence[int], max_layer_fraction: float,
           max_kl: float, size: int) -> dict[str, Any]:
    """Score every (layer, position) candidate (module docstring) and pick one; returns the selection record."""
    import torch

    n_layers = diffs.shape[0]
    base_harmful = refusal_scores(last_logits(hf, model, harmful_val, size), refusal)
    base_harmless_log = last_logits(hf, model, harmless_val, size)
    rows = []
    for layer in layers:
        for position in positions:  # negative: -P..-1
            diff = diffs[layer, position]
            if degenerate(diffs, layer, position):  # e.g. layer 0 at a template token: the same embedding in every prompt
                rows.append({"layer": layer, "position": position, "bypass": None, "induce": None, "kl": None,
                             "kept": False, "norm": float(torch.linalg.vector_norm(diff)),
                             "skipped": "the difference of means is zero here"})
                continue
            unit = diff / torch.linalg.vector_norm(diff)
            with hooked(hf, unit):
                bypass = float(refusal_scores(last_logits(hf, model, harmful_val, size), refusal).mean())
                kl_value = kl(base_harmless_log, last_logits(hf, model, harmless_val, size))
            with added(hf, layer, diff):
                induce = float(refusal_scores(last_logits(hf, model, harmless_val, size), refusal).mean())
            kept = layer < max_layer_fraction * n_layers and induce > 0 and kl_value < max_kl
            rows.append({"layer": layer, "position": position, "bypass": bypass, "induce": induce,
                         "kl": kl_value, "kept": kept, "norm": float(torch.linalg.vector_norm(diff))})
    kept = [r for r in rows if r["kept"]]
    pool = kept or [r for r in rows if r["bypass"] is not None and math.isfinite(r["bypass"])]
    if not pool:
        raise HarnessError(f"attack=refusal_ablation: no candidate direction at layers {list(layers)}, positions "
                           f"{list(positions)} has a nonzero difference of means; give other attack.layers")
    best = min(pool, key=lambda r: r["bypass"])
    how = ("the lowest bypass score among candidates with layer < {f} x layers, induce > 0 and KL < {k}" if kept else
           "no candidate passed the filters (layer < {f} x layers, induce > 0, KL < {k}): the lowest bypass score of all")
    return {"layer": best["layer"], "position": best["position"], "how": how.format(f=max_layer_fraction, k=max_kl),
            "baseline_refusal_score": float(base_harmful.mean()), "candidates": rows}


def degenerate(diffs: torch.Tensor, layer: int, position: int) -> bool:
    """Whether the difference of means at (layer, position) is ~0 relative to the largest one (no direction)."""
    import torch

    norms = torch.linalg.vector_norm(diffs, dim=-1)
    return bool(norms[layer, position] <= 1e-6 * norms.max())


def check_layer(layer: int | None, n_layers: int, model: Model) -> None:
    if layer is not None and not 0 <= layer < n_layers:
        raise HarnessError(f"attack.layer={layer}: model {model.name!r} has {n_layers} decoder layers; choose 0..{n_layers - 1} "
                           "(or null: selected on held-out prompts)")


def check_position(position: int | None, n_positions: int, model: Model) -> None:
    if position is not None and not -n_positions <= position <= -1:
        raise HarnessError(f"attack.position={position}: the chat template of {model.name!r} puts {n_positions} tokens after "
                           f"the user's text; choose -{n_positions}..-1 (or null: selected on held-out prompts)")


def no_prompts(kind: str, where: str) -> HarnessError:
    return HarnessError(f"attack=refusal_ablation: no {kind} prompts ({where}); the direction is a difference of the mean "
                        f"activations on harmful and harmless prompts, so both sets need some")
