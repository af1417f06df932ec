"""The one training loop: supervised fine-tuning on chat examples with a per-token objective.

Every training defense (safety SFT, deep alignment, constrained SFT) and every fine-tuning
attack goes through `train`. An `Example` is a chat, an optional assistant prefix that is
given but not trained on (safety-recovery examples), and the response that is trained on.
The loop computes logits only at response positions (the LM head over a 49k vocabulary
is most of the cost of a small model), and hands them to an `Objective` together with each
token's position in the response and its example's weight.

Examples, their encoding into batches and the length-grouped order are `harness.training.data`
(re-exported here: `from harness.training.loop import Example` keeps working).

The trained model is saved in the content-addressed model cache, keyed by the recipe version,
the base model, the data (every field of every example), every setting and the objective: the
same recipe is trained once and reused.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, PlainSerializer

from harness.errors import HarnessError
from harness.model.base import LocalModel, Model
from harness.training import contamination
from harness.training.data import Batch, DataFn, Encoder, Example, length_grouped
from harness.training.distributed import Replicas, build_once, is_main, objective_module
from harness.types import RECIPE_VERSION, Frozen, content_hash
from harness.util.progress import progress

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class LoraSettings(Frozen):
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class TrainSettings(Frozen):
    lr: float = Field(1e-4, gt=0)
    epochs: int = Field(2, ge=1)
    max_steps: int | None = None  # stop early after this many optimizer steps
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup_steps: int = Field(4, ge=0)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = Field(320, ge=8)
    # bf16 autocast, weights stay fp32. None = on GPUs only. On CPUs with native bf16 (AVX512-BF16, AMX) it is
    # faster: 1.46x per step on the embedded model's safety SFT data on 2 AMD EPYC cores (bench/training_precision.py); on CPUs
    # without it, much slower (the loop warns).
    bf16: bool | None = None
    seed: int = 0
    lora: LoraSettings | None = None
    save_steps: tuple[int, ...] = ()  # also save the model after these optimizer steps (checkpoints/step-N)
    # Batches of similar lengths (transformers' length-grouped sampling: shuffled mega-batches, sorted inside):
    # on chat SFT data a random batch is ~35 % padding, a grouped one ~10 %. False = plain shuffling.
    group_by_length: bool = True
    # Encode the tokens every example of a batch starts with (the chat template's system turn: 24 of ~84 tokens of
    # the embedded model's safety SFT examples) once per batch and continue each row from a copy of their KV cache:
    # the same loss and gradients up to floating-point rounding (tests/training), fewer tokens through the model
    # (with the fused optimizer: 386 -> 308-321 s for its 152 steps, results/bench/first_run.md). How, not what:
    # not in the cache key, like the optimizer's fused kernel.
    shared_prefix: bool = True

    def key(self) -> dict[str, Any]:
        """What the cache key sees: every setting that changes what is computed (checkpoints too: a cached model
        must hold the ones asked for); not `shared_prefix`, which changes only how (the same function, rounded
        differently)."""
        out = self.model_dump(mode="json")
        out.pop("shared_prefix")
        return out


# A TrainSettings field of a plugin's settings: the cache key sees `TrainSettings.key()`.
TrainKey = PlainSerializer(lambda t: t.key(), when_used="always")


class Objective:
    """Per-token loss over response tokens.

    Hooks, in the order the loop calls them: `prepare` (before the model is loaded: precompute,
    e.g. reference log-probs), `setup` (may add trainable modules to the loaded model, e.g. a
    classification head), then per batch `forward` (what `loss` needs; default: the trained
    tokens' log-probs) and `loss`; `save` writes extra artifacts next to the saved weights.
    """

    name = "sft"

    def describe(self) -> dict[str, Any]:
        return {"objective": self.name}

    def prepare(self, model: Model, encode: Callable[[Sequence[Example]], Batch], examples: Sequence[Example]) -> None:
        return None

    def setup(self, hf: Any) -> Any:
        return hf

    def forward(self, hf: Any, batch: Batch) -> Any:
        return token_logprobs(hf, batch)

    def loss(self, logprobs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """`logprobs`: [N] log pi_theta(target | context) of each trained token."""
        nll = -logprobs * batch.weights
        return nll.sum() / batch.weights.numel()

    def save(self, hf: Any, out: Path) -> None:
        return None


def token_logprobs(hf: Any, batch: Batch) -> torch.Tensor:
    """log p(target) at the trained positions only: the LM head runs on those rows alone. A batch with a shared
    prefix (`Batch.prefix`) encodes it once and runs every row's remainder on a copy of its KV cache (the copies'
    gradients add up in the prefix's backward)."""
    import torch

    decoder, width = hf.get_decoder(), batch.input_ids.shape[1]
    if batch.prefix:
        from transformers import DynamicCache

        shared, rows_n = batch.prefix, batch.input_ids.shape[0]
        cache = DynamicCache(config=hf.config)
        decoder(input_ids=batch.input_ids[:1, :shared], past_key_values=cache, use_cache=True)
        cache.reorder_cache(torch.zeros(rows_n, dtype=torch.long, device=batch.input_ids.device))  # one copy per row
        positions = torch.arange(shared, width, device=batch.input_ids.device).expand(rows_n, -1)
        hidden = decoder(input_ids=batch.input_ids[:, shared:], attention_mask=batch.attention_mask, position_ids=positions,
                         past_key_values=cache, use_cache=True).last_hidden_state
        flat = batch.positions // width * (width - shared) + batch.positions % width - shared
    else:
        hidden = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        flat = batch.positions
    rows = hidden.reshape(-1, hidden.shape[-1])[flat]
    logits = hf.get_output_embeddings()(rows).float()
    return torch.log_softmax(logits, dim=-1).gather(1, batch.targets[:, None]).squeeze(1)


def train(
    model: Model,
    data: DataFn | Sequence[Example],
    settings: TrainSettings,
    objective: Objective | None = None,
    name: str | None = None,
    recipe: dict[str, Any] | None = None,
) -> LocalModel:
    """Fine-tune `model` and return the trained model (built once per recipe, then cached)."""
    objective = objective or Objective()
    raw: DataFn = data if callable(data) else (lambda epoch, d=list(data): d)
    examples0 = list(raw(0))
    if not examples0:
        raise HarnessError("no training examples")
    name = name or f"{model.name}-ft"
    key = cache_key(model, examples0, settings, objective, recipe)

    def build(out: Path) -> None:  # only on a cache miss: tokenizing for the length filter costs nothing otherwise
        encoder = Encoder(model, settings.max_length)

        def fits(examples: Sequence[Example]) -> list[Example]:
            """Examples whose prompt leaves no room for a trained token under max_length are dropped."""
            kept = [e for e in examples if encoder.ids(e)[1] < settings.max_length]
            if len(kept) < len(examples):
                log.warning("training: %d of %d examples dropped: prompt longer than max_length=%d",
                            len(examples) - len(kept), len(examples), settings.max_length)
            return kept

        first = fits(examples0)
        if not first:
            raise HarnessError(f"no training example fits train.max_length={settings.max_length}")
        _train_into(out, model, lambda epoch: fits(raw(epoch)), first, settings, objective)

    folder = build_once(model.cache_dir / "models", f"{name}-{key}", build)  # = cached_folder on one process
    if is_main():
        contamination.record(folder, examples0, contamination.trained_prompts(model))  # also for models cached before
    return like(model, folder, name)


def cache_key(model: Model, examples: Sequence[Example], settings: TrainSettings, objective: Objective,
              recipe: dict[str, Any] | None = None) -> str:
    """The trained model's key in the model cache: the recipe version, the base, every example (first epoch),
    the recipe's own description, every training setting and the objective."""
    return content_hash({"version": RECIPE_VERSION, "base": model.id, "data": [e.digest() for e in examples],
                         "recipe": recipe or {}, "settings": settings.key(), "objective": objective.describe()})


def like(model: Model, folder: Path, name: str) -> LocalModel:
    """A trained copy's card: the weights in `folder`, everything else (template, prompts, device) from `model`."""
    return LocalModel(folder, name=name, dtype=model.dtype, chat_template=model.chat_template,
                      system_prompt=model.system_prompt, safety_system_prompt=model.safety_system_prompt,
                      trust_remote_code=model.trust_remote_code, cache_dir=model.cache_dir, device=model.device)


def checkpoint(trained: LocalModel, step: int) -> LocalModel:
    """The model saved after `step` optimizer steps (TrainSettings.save_steps)."""
    folder = trained.folder / "checkpoints" / f"step-{step}"
    if not folder.is_dir():
        have = sorted(int(p.name.split("-")[1]) for p in (trained.folder / "checkpoints").glob("step-*"))
        raise HarnessError(f"no checkpoint after step {step} in {trained.folder}; saved steps: {have or 'none'} "
                           "(set train.save_steps to save others)")
    return like(trained, folder, f"{trained.name}@step{step}")


def load_trainable(model: Model, settings: TrainSettings, device: Any = None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(model.folder, dtype=torch.float32, trust_remote_code=model.trust_remote_code)
    hf.to(device or model.torch_device).train()
    if settings.lora:
        from peft import LoraConfig, get_peft_model

        lora = settings.lora
        hf = get_peft_model(hf, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                           target_modules=list(lora.target_modules), task_type="CAUSAL_LM"))
    return hf


def _train_into(out: Path, model: Model, data_fn: DataFn, first: list[Example], settings: TrainSettings, objective: Objective) -> None:
    import torch

    torch.manual_seed(settings.seed)
    objective.prepare(model, Encoder(model, settings.max_length), first)
    replicas = Replicas(model.torch_device)  # one process, or one of `accelerate launch`'s
    hf = objective.setup(load_trainable(model, settings, replicas.device))

    def save(target: Path, merge_copy: bool) -> Any:
        """Only the main process writes (after every process helped gather FSDP / ZeRO-3 shards)."""
        state = None if settings.lora else replicas.full_state_dict(replicas.module)
        if not is_main():
            return None
        trained = replicas.unwrapped(replicas.module).hf
        if settings.lora:
            trained = (copy.deepcopy(trained) if merge_copy else trained).merge_and_unload()
        if not merge_copy:
            trained.eval()
            objective.save(trained, target)  # may detach extra modules (a classification head) first
        if state is not None:
            state = {k: v for k, v in state.items() if k in trained.state_dict()}
        trained.save_pretrained(target, state_dict=state)
        model.tokenizer.save_pretrained(target)
        return trained

    stats = fit(hf, model, data_fn, first, settings, objective, replicas=replicas,
                on_step=lambda step: save(out / "checkpoints" / f"step-{step}", merge_copy=True))
    if save(out, merge_copy=False) is not None:
        (out / "train_log.json").write_text(json.dumps({
            "recipe_version": RECIPE_VERSION, "base": model.id, "settings": settings.model_dump(mode="json"),
            "objective": objective.describe(),
            "examples": len(first), "kinds": {k: sum(e.kind == k for e in first) for k in sorted({e.kind for e in first})},
            "processes": replicas.size, **stats,
        }, indent=1))
        log.info("trained %s: %d steps in %.0f s (%.0f tokens/s), final loss %.3f", out.name, stats["steps"],
                 stats["seconds"], stats["tokens_per_s"], stats["history"][-1]["loss"])
    replicas.barrier()


def native_bf16_cpu() -> bool | None:
    """Whether this CPU computes bf16 natively (x86 AVX512-BF16 or AMX); None where /proc/cpuinfo cannot tell."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def fit(hf: Any, model: Model, data_fn: DataFn, first: list[Example], settings: TrainSettings, objective: Objective,
        on_step: Callable[[int], None] | None = None, replicas: Replicas | None = None) -> dict[str, Any]:
    """The optimisation loop itself (AdamW, linear warm-up/decay, clipping, accumulation)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    rng = random.Random(settings.seed)
    replicas = replicas or Replicas(model.torch_device)  # one process, or one of `accelerate launch`'s
    device = replicas.device
    encode = Encoder(model, settings.max_length, settings.shared_prefix)
    params = [p for p in hf.parameters() if p.requires_grad]
    # The fused kernel: the same update as the default (foreach) one up to float rounding (~1e-7 after 3 steps), one
    # pass over parameters, gradients and moments instead of several: 0.93 -> 0.16 s per optimizer step for the
    # embedded model at one thread (one run each, another job on the other core). An implementation choice like an
    # attention kernel, so not in the cache key.
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay,
                                  fused=device.type in ("cpu", "cuda") or None)
    module, optimizer = replicas.prepare(objective_module(hf, objective), optimizer, settings.batch_size)
    per_epoch = math.ceil(len(first) / (settings.batch_size * settings.grad_accum))
    total = min(settings.max_steps or per_epoch * settings.epochs, per_epoch * settings.epochs)
    scheduler = get_linear_schedule_with_warmup(optimizer, min(settings.warmup_steps, total), total)
    bf16 = settings.bf16 if settings.bf16 is not None else device.type == "cuda"
    if bf16 and device.type == "cpu" and native_bf16_cpu() is False:
        log.warning("training: train.bf16=true on a CPU without native bf16 (no avx512_bf16 / amx_bf16 in "
                    "/proc/cpuinfo): bf16 autocast is emulated there and much slower than fp32; set "
                    "train.bf16=false (the trained model then differs from the recipe's, and so does its cache key)")
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)

    history, step, tokens, start = [], 0, 0, time.perf_counter()
    bar = progress(total=total, desc=f"training [{model.name}]", unit="step", disable=not is_main())
    for epoch in range(settings.epochs):
        examples = list(first if epoch == 0 else data_fn(epoch))
        if settings.group_by_length:
            examples = length_grouped(examples, encode, settings.batch_size, seed=settings.seed + epoch)
        else:
            rng.shuffle(examples)
        chunks = [examples[i : i + settings.batch_size] for i in range(0, len(examples), settings.batch_size)]
        for i in range(0, len(chunks), settings.grad_accum):
            group = chunks[i : i + settings.grad_accum]
            step_loss = 0.0
            for j, chunk in enumerate(group):
                mine, counts = replicas.shard(chunk)  # on one process: the whole chunk
                batch = encode(mine).to(device)
                share = replicas.token_share(batch.weights.numel() if counts else 0)
                with replicas.no_sync(module, last=j == len(group) - 1), autocast:
                    loss = objective.loss(module(batch), batch) * share / len(group)
                replicas.backward(loss)
                step_loss += loss.item()
                tokens += int(batch.attention_mask.sum()) if counts else 0
            replicas.clip(module, params, settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            step_loss = replicas.mean(step_loss)
            history.append({"step": step, "epoch": epoch, "loss": step_loss, "lr": scheduler.get_last_lr()[0]})
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.3f}")
            if on_step and step in settings.save_steps:
                on_step(step)
            if step >= total:
                break
        if step >= total:
            break
    bar.close()
    seconds = time.perf_counter() - start
    return {"steps": step, "seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / max(seconds, 1e-9), "history": history}
