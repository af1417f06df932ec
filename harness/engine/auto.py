"""engine=auto (the default): vLLM when a CUDA GPU and the `vllm` package are both present,
else the transformers engine. The choice is logged with its reason, and every record names the
engine that produced it (`completion.engine`); the run hash is the chosen engine's own, so a
run resumes its records whichever way it was configured.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from harness.engine.base import Engine
from harness.engine.hf import HFEngine
from harness.model.base import Model

log = logging.getLogger("harness")


def choose(model: Model) -> tuple[str, str]:
    """("vllm" | "hf", why)."""
    import torch

    if model.device not in ("auto", "cuda") and not model.device.startswith("cuda"):
        return "hf", f"model.device={model.device}"
    if not torch.cuda.is_available():
        return "hf", "no CUDA GPU"
    if importlib.util.find_spec("vllm") is None:
        return "hf", f"CUDA GPU {torch.cuda.get_device_name(0)} but vllm is not installed (pip install vllm)"
    return "vllm", f"CUDA GPU {torch.cuda.get_device_name(0)} and vllm installed"


def auto_engine(model: Model, batch_size: int = 64, progress: bool = True, vllm: dict[str, Any] | None = None,
                prefix_reuse: bool = True) -> Engine:
    """The engine for `model`: `batch_size` and `prefix_reuse` for the transformers engine, `vllm` options
    (conf/engine/vllm.yaml's keys) for vLLM."""
    name, why = choose(model)
    log.info("engine=auto: %s (%s)", name, why)
    if name == "vllm":
        from harness.engine.vllm import VLLMEngine

        return VLLMEngine(model, progress=progress, **(vllm or {}))
    return HFEngine(model, batch_size=batch_size, progress=progress, prefix_reuse=prefix_reuse)
