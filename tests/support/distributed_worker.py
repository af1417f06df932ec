"""Trains the tiny model on a fixed recipe through harness.training.loop.train; run as one process
(`python tests/support/distributed_worker.py ...`) or several (`accelerate launch ... tests/support/distributed_worker.py ...`).
Used by tests/training/test_distributed_training.py. Prints the trained folder on the main process."""

from __future__ import annotations

import sys

from harness.model.base import LocalModel
from harness.training.distributed import is_main
from harness.training.loop import Example, TrainSettings, train
from harness.types import Message

TOPICS = ["rivers", "owls", "prime numbers", "tea", "glaciers", "chess", "bridges", "bees", "jazz", "volcanoes"]


def examples() -> list[Example]:
    """Ten chats of different lengths (so the processes' shares of a batch's tokens differ)."""
    return [Example(messages=(Message(role="user", content=f"Tell me about {t}." + " Please." * (i % 4)),),
                    response=f"{t.capitalize()} are interesting." + " Really." * i, weight=1.0 + 0.1 * i)
            for i, t in enumerate(TOPICS)]


def main(tiny_folder: str, cache_dir: str) -> None:
    model = LocalModel(tiny_folder, name="tiny", cache_dir=cache_dir, device="cpu")
    settings = TrainSettings(lr=1e-3, epochs=2, batch_size=4, grad_accum=1, warmup_steps=1, max_length=64, seed=3)
    trained = train(model, examples(), settings, name="tiny-dist")
    if is_main():
        print(f"TRAINED {trained.folder}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
