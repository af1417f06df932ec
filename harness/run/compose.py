"""A run composed from its Hydra config: the plugins built, the run folder chosen."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.config import check_finite, instantiate


def build_experiment(cfg: DictConfig):
    """The run's plugins, sampling and folder, every number checked finite first."""
    from harness.run.loop import Experiment
    from harness.settings import parse
    from harness.types import Sampling

    check_finite(OmegaConf.to_container(cfg, resolve=False))
    sampling = parse(Sampling, "sampling", cfg.sampling)
    return Experiment(
        model=instantiate(cfg.model),
        benchmark=instantiate(cfg.benchmark),
        attack=instantiate(cfg.attack),
        defense=instantiate(cfg.defense),
        judge=instantiate(cfg.judge),
        engine=instantiate(cfg.engine),
        sampling=sampling,
        out_dir=run_folder(cfg),
        config=OmegaConf.to_container(cfg, resolve=True),
    )


def run_folder(cfg: DictConfig) -> Path:
    """`out_dir`; in a --multirun sweep each job's own folder (hydra.sweep.dir/subdir), so
    `python -m harness report <sweep dir>` finds every job's records there."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.out_dir)
