"""Training on several processes: the one training loop (`harness.training.loop.fit`) under
`accelerate launch` (DDP, FSDP, DeepSpeed ZeRO-3; configs in conf/accelerate/).

    accelerate launch --config_file conf/accelerate/ddp.yaml -m harness model=smollm2 defense=safety_sft

Every process runs the harness; each optimizer step's batch (`train.batch_size` examples, the
same as on one process) is split across the processes, and each process's loss is rescaled by
its share of the step's trained tokens, so the averaged gradient is the one-process gradient
of the same batch: a recipe trains the same model on 1 or N processes, and the model cache is
keyed by the recipe, not the world size. Only the main process writes the trained model; the
others return its folder. After training, evaluation runs on the main process alone.

A plain `python -m harness` (no WORLD_SIZE in the environment) never touches accelerate.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from harness.util.cache import cached_folder

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


@cache
def accelerator() -> Any:
    """The process group (gloo on CPU, NCCL on GPUs), set up once per process by accelerate."""
    import torch
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available())


def build_once(root: Path, key: str, build: Callable[[Path], None]) -> Path:
    """`cached_folder` for every process: all of them take part in `build` (training needs each one), only the
    main process's output is kept and renamed into place; the others wait for it."""
    if world_size() == 1:
        return cached_folder(root, key, build)
    import torch

    acc = accelerator()
    missing = torch.tensor([0 if (root / key / "config.json").exists() else 1], device=acc.device)
    if int(acc.reduce(missing, reduction="sum")):  # build unless every process already sees the folder
        if is_main():
            cached_folder(root, key, build)
        else:
            with tempfile.TemporaryDirectory() as scratch:  # nothing is written here (only the main process saves)
                build(Path(scratch))
    acc.wait_for_everyone()
    return root / key


class Replicas:
    """What `fit` does differently on several processes; on one process every method is the identity."""

    def __init__(self, device: torch.device) -> None:
        self.size = world_size()
        self.rank = rank()
        self.acc = accelerator() if self.size > 1 else None
        self.device = self.acc.device if self.acc else device

    def prepare(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, batch_size: int = 1) -> tuple[Any, Any]:
        """DDP / FSDP / DeepSpeed wrapping, as the `accelerate launch` config says."""
        deepspeed = getattr(self.acc.state, "deepspeed_plugin", None) if self.acc else None
        if deepspeed is not None:  # DeepSpeed wants its micro-batch up front (there is no dataloader to read it from)
            deepspeed.deepspeed_config["train_micro_batch_size_per_gpu"] = -(-batch_size // self.size)
        self.module, optimizer = self.acc.prepare(module, optimizer) if self.acc else (module, optimizer)
        return self.module, optimizer

    def shard(self, chunk: Sequence[T]) -> tuple[list[T], bool]:
        """This process's examples of one batch (every size-th), and False when it has none: it then runs the
        batch's first example with zero weight, since every process must take part in each gradient exchange."""
        mine = list(chunk[self.rank :: self.size])
        return (mine, True) if mine else ([chunk[0]], False)

    def token_share(self, tokens: int) -> float:
        """size x this process's fraction of the batch's trained tokens: gradients are averaged over processes,
        so per-process token means weighted this way add up to the one-process token mean."""
        if not self.acc:
            return 1.0
        import torch

        total = self.acc.reduce(torch.tensor([float(tokens)], device=self.device), reduction="sum")
        return self.size * tokens / max(float(total), 1.0)

    def no_sync(self, module: Any, last: bool) -> contextlib.AbstractContextManager:
        """Skip the gradient exchange on all but the last micro-batch of an accumulated step."""
        return self.acc.no_sync(module) if self.acc and not last else contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        self.acc.backward(loss) if self.acc else loss.backward()

    def clip(self, module: Any, params: list, max_norm: float) -> None:
        import torch

        if self.acc:
            self.acc.clip_grad_norm_(module.parameters(), max_norm)
        else:
            torch.nn.utils.clip_grad_norm_(params, max_norm)

    def mean(self, value: float) -> float:
        """A per-process loss summed over processes (each carries its token share): the batch's loss."""
        if not self.acc:
            return value
        import torch

        return float(self.acc.reduce(torch.tensor([value], device=self.device), reduction="sum")) / self.size

    def unwrapped(self, module: Any) -> Any:
        return self.acc.unwrap_model(module) if self.acc else module

    def full_state_dict(self, module: Any) -> dict[str, Any] | None:
        """The whole model's weights on the main process (gathered from FSDP / ZeRO-3 shards; every process must
        call this); None on one process, where the model saves itself."""
        if not self.acc:
            return None
        state = self.acc.get_state_dict(module)
        return {k.removeprefix("hf."): v for k, v in state.items()} if state is not None else None

    def barrier(self) -> None:
        if self.acc:
            self.acc.wait_for_everyone()


def objective_module(hf: Any, objective: Any) -> torch.nn.Module:
    """The module the wrappers see: DDP and FSDP hook into a module's own forward, so the objective's forward
    (which reaches into the decoder and the LM head) runs inside one."""
    import torch

    class ObjectiveForward(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, batch: Any) -> Any:
            return objective.forward(self.hf, batch)

    return ObjectiveForward()
