"""LLM safety attack-and-evaluation harness: attacks x defenses x models -> judged ASR tables."""

__version__ = "0.1.0"


def _register_resolvers() -> None:
    """`${harness.file_stem:<path>}`: a file's name without folder and suffix (a custom benchmark's default name)."""
    from pathlib import Path

    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("harness.file_stem"):
        OmegaConf.register_new_resolver("harness.file_stem", lambda path: Path(str(path)).stem if path else "custom")


_register_resolvers()
