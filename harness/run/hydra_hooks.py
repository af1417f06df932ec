"""Hydra callbacks (conf/config.yaml `hydra.callbacks`): what must happen around Hydra's own steps.

- Before the job's folder is made: `out_dir` must be (or become) a writable folder, else one
  clear line and exit code 2 instead of Hydra's traceback from `mkdir`.
- Before anything is written: the secrets the configuration points at (URL credentials, the
  keys named by `*api_key_env`) are registered with `harness.util.secrets`.
- Right after Hydra saves `.hydra/{config,hydra,overrides}.yaml` (and a sweep's
  `multirun.yaml`): those files are scrubbed of secrets, and the log gets the scrubbing
  filter, before the job's first line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from harness.errors import HarnessError
from harness.store.folder import check_folder
from harness.util import secrets

EXIT_USER_ERROR = 2


def scrub_file(path: Path) -> None:
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    cleaned = secrets.scrub(text)
    if cleaned != text:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(cleaned, encoding="utf-8")
        tmp.replace(path)


class Guard(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        secrets.from_config(OmegaConf.to_container(config, resolve=False))
        HydraConfig.instance().set_config(config)  # so ${hydra:...} in the folder's name resolves
        try:
            check_folder(Path(str(config.hydra.run.dir)))
        except HarnessError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        secrets.from_config(OmegaConf.to_container(config, resolve=False))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        secrets.from_config(OmegaConf.to_container(config, resolve=False))
        secrets.guard_logging()
        hydra = config.hydra
        if hydra.output_subdir is not None:
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                scrub_file(Path(hydra.runtime.output_dir) / hydra.output_subdir / name)
        if hydra.mode is not None and str(hydra.mode).endswith("MULTIRUN"):
            scrub_file(Path(str(hydra.sweep.dir)) / "multirun.yaml")
