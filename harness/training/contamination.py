"""Contamination guard: which evaluated behaviors did the model see in training?

Every model the harness trains (`training.train`: alignment recipes, fine-tuning attacks with
their safety anchors, the safety-signal head) gets `trained_prompts.json` in its cache folder:
content hashes of the user prompts of its training examples, by kind (refusal, utility,
recovery, harmful, anchor, ...), plus those of the model it was trained from. The file is
written on every resolve, so models cached before this guard existed get one too.

A run hashes its behaviors the same way (the request alone and with its context) and reports
the overlap: contaminated behaviors are counted per table row (`contaminated`), warned about
once, and dropped with `benchmark.exclude_trained=true`. Hashes are of the text after
case-folding and whitespace collapsing, so a re-typed copy of a prompt still matches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import DataError
from harness.types import Behavior

if TYPE_CHECKING:
    from harness.model.base import Model
    from harness.training.data import Example

log = logging.getLogger(__name__)
FILE = "trained_prompts.json"
RUN_FILE = "contamination.json"  # in a run folder: the contaminated behaviors, for merged reports


def prompt_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.casefold().split()).encode("utf-8")).hexdigest()[:16]


def behavior_hashes(behavior: Behavior) -> set[str]:
    return {prompt_hash(behavior.prompt), prompt_hash(behavior.query())}


def example_prompts(examples: Iterable[Example]) -> dict[str, set[str]]:
    """kind -> hashes of the examples' user turns."""
    out: dict[str, set[str]] = {}
    for e in examples:
        for m in e.messages:
            if m.role == "user" and m.content.strip():
                out.setdefault(e.kind or "other", set()).add(prompt_hash(m.content))
    return out


def read(folder: Path) -> dict[str, set[str]]:
    path = folder / FILE
    if not path.is_file():
        return {}
    return {kind: set(hashes) for kind, hashes in json.loads(path.read_text()).get("prompts", {}).items()}


def record(folder: Path, examples: Sequence[Example], base: dict[str, set[str]]) -> None:
    """Write the trained prompts (these examples' and the base model's) into the trained model's folder."""
    prompts = example_prompts(examples)
    for kind, hashes in base.items():
        prompts.setdefault(f"base {kind}" if not kind.startswith("base ") else kind, set()).update(hashes)
    text = json.dumps({"prompts": {k: sorted(v) for k, v in sorted(prompts.items())}}, indent=1) + "\n"
    path = folder / FILE
    if path.is_file() and path.read_text() == text:
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{FILE}.", dir=folder)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def trained_prompts(model: Model) -> dict[str, set[str]]:
    """The prompts a model was trained on, for models the harness trained (local folders only)."""
    folder = model.local_folder()
    return read(folder) if folder is not None else {}


def overlap(behaviors: Sequence[Behavior], prompts: dict[str, set[str]]) -> dict[str, list[str]]:
    """behavior id -> the training kinds its prompt appeared in (only contaminated behaviors)."""
    out: dict[str, list[str]] = {}
    for b in behaviors:
        hashes = behavior_hashes(b)
        kinds = sorted(kind for kind, trained in prompts.items() if hashes & trained)
        if kinds:
            out[b.id] = kinds
    return out


def guard(model: Model, behaviors: list[Behavior], benchmark: str, exclude: bool, out_dir: Path,
          optimized_on: Callable[[list[Behavior]], Sequence[Behavior]] = lambda behaviors: ()) -> list[Behavior]:
    """Drop (`exclude`) or warn once about behaviors the model was trained on; record them for the tables.

    `optimized_on(behaviors)` names those the attack optimizes on and also evaluates (a universal
    GCG suffix's training behaviors): marked as "attack optimization", never dropped (the attack
    picks them from the behaviors it is given)."""
    found = overlap(behaviors, trained_prompts(model))
    if exclude and found:
        behaviors = [b for b in behaviors if b.id not in found]
        log.warning("contamination: dropped %d %s behaviors that %s was trained on (benchmark.exclude_trained); %d left",
                    len(found), benchmark, model.name, len(behaviors))
        found = {}
    for b in optimized_on(behaviors):
        found.setdefault(b.id, []).append("attack optimization")
    path = out_dir / RUN_FILE
    if not found:
        path.unlink(missing_ok=True)
        return behaviors
    kinds: dict[str, int] = {}
    for ks in found.values():
        for k in ks:
            kinds[k] = kinds.get(k, 0) + 1
    detail = ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items()))
    log.warning("contamination: %d of %d %s behaviors are prompts %s was trained on or the attack optimizes on (%s); "
                "their rows are marked `contaminated` in the tables; benchmark.exclude_trained=true drops trained ones",
                len(found), len(behaviors), benchmark, model.name, detail)
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": model.name, "behaviors": found}, indent=1) + "\n")
    return behaviors


def load_run(folder: Path) -> set[tuple[str, str]]:
    """(model name, behavior id) pairs a run folder recorded as contaminated."""
    path = folder / RUN_FILE
    if not path.is_file():
        return set()
    try:
        data = json.loads(path.read_bytes())
        return {(str(data["model"]), str(b)) for b in data["behaviors"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a contamination record ({type(exc).__name__}: {exc}); it is written by the run "
                        "that found trained prompts among its behaviors: re-run it, or delete the file to report "
                        "without the contamination column") from None
