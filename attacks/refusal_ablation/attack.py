"""attack=refusal_ablation: ablate the refusal direction of the target (white-box, weights needed).

`tamper(model)` computes the direction from training-side prompts (`harmful`, `harmless`, each with
the prompts of the `exclude` evaluation sets removed; the first `n_train` of each for the means, the
next `n_val` of each for the selection), caches it by recipe in `<cache_dir>/directions/<model>-<key>/`
(direction.pt, selection.json: the chosen layer and position and how, every candidate's scores, the
prompts counted; trained_prompts.json: the direction's prompts and the base's, which the contamination
guard reads), and returns the model with the direction ablated:
- `orthogonalize: false`: an `AblatedModel` card (forward hooks on the HF weights; engine=hf);
- `orthogonalize: true`: a model folder with the direction folded into the weights, cached in
  `<cache_dir>/models/<model>-ablated-<key>/`, that any engine loads (vLLM, a server).
Then each behavior is asked once, directly; the requests' params record the layer, the position and
the method, so records and tables say which direction was ablated. Compare with attack=direct on the
same model and behaviors: `python -m harness compare <direct run> <ablation run>` (paired, McNemar).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PlainSerializer, field_validator, model_validator

from attacks.refusal_ablation import direction as rd
from harness.attack import Attack
from harness.benchmark import Benchmark
from harness.defense import Defense
from harness.errors import HarnessError
from harness.model.ablated import DIRECTION, AblatedModel, decoder_layers, orthogonalize
from harness.model.base import Model
from harness.settings import Named, Settings
from harness.training import contamination
from harness.training.data import Example
from harness.training.refusals import VARIED
from harness.types import RECIPE_VERSION, Behavior, Message, Request, Sampling, content_hash
from harness.util.cache import cached_folder

log = logging.getLogger(__name__)
Names = PlainSerializer(lambda v: [b.name for b in v], when_used="always")  # benchmarks by their names
SELECTION = "selection.json"


def norm(text: str) -> str:
    return " ".join(text.lower().split())


class RefusalAblationSettings(Settings):
    cosmetic = frozenset({"batch_size"})
    harmful: Annotated[Benchmark, Named]  # training-side harmful requests
    harmless: Annotated[Benchmark, Named]  # training-side harmless requests
    exclude: Annotated[tuple[Benchmark, ...], Names] = ()  # evaluation sets whose prompts are never used
    n_train: int = Field(64, ge=1)  # prompts of each kind for the difference of means
    n_val: int = Field(16, ge=1)  # held-out prompts of each kind that score the candidates
    layer: int | None = Field(None, ge=0)  # null: selected
    position: int | None = Field(None, le=-1)  # post-instruction position, -P..-1; null: selected
    layers: tuple[int, ...] | None = None  # candidate layers (null: every layer below max_layer_fraction x layers)
    positions: tuple[int, ...] | None = None  # candidate positions (null: every post-instruction position)
    max_layer_fraction: float = Field(0.8, gt=0.0, le=1.0)
    max_kl: float = Field(0.1, gt=0.0)
    refusals: tuple[str, ...] = VARIED  # refusal texts: their first tokens are the refusal score's tokens
    orthogonalize: bool = False  # fold the ablation into the weights (a model folder any engine loads)
    batch_size: int = Field(16, ge=1)

    @field_validator("layers", "positions", mode="before")
    @classmethod
    def listed(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, list | tuple):
            value = [value]
        if value is not None and len(value) == 0:
            raise ValueError("an empty candidate list; give some, or null for all")
        return value

    @model_validator(mode="after")
    def valid_candidates(self) -> RefusalAblationSettings:
        if self.layers is not None and any(v < 0 for v in self.layers):
            raise ValueError(f"attack.layers={list(self.layers)}: layer indices are >= 0")
        if self.positions is not None and any(v >= 0 for v in self.positions):
            raise ValueError(f"attack.positions={list(self.positions)}: positions count from the end, -P..-1")
        if not any(t.strip() for t in self.refusals):
            raise ValueError("attack.refusals: give at least one refusal text")
        return self


class RefusalAblationAttack(Attack):
    name = "refusal_ablation"
    Settings = RefusalAblationSettings
    selection: dict[str, Any] | None = None  # what tamper chose: the requests' params

    # --- prompts ----------------------------------------------------------------------
    def prompts(self) -> dict[str, list[str]]:
        """harmful/harmless x train/val: training-side prompts without any of an `exclude` set's."""
        held_out = {norm(b.query()) for bench in self.exclude for b in bench.load()}
        out: dict[str, list[str]] = {}
        for kind, bench in (("harmful", self.harmful), ("harmless", self.harmless)):
            rows = list(dict.fromkeys(b.query() for b in bench.load() if norm(b.query()) not in held_out))
            if not rows:
                raise rd.no_prompts(kind, f"attack.{kind}={bench.name} gives none"
                                    + (" outside the excluded evaluation sets" if self.exclude else ""))
            out[f"{kind}_train"] = rows[: self.n_train]
            out[f"{kind}_val"] = rows[self.n_train : self.n_train + self.n_val]
        return out

    def needs_selection(self) -> bool:
        return self.layer is None or self.position is None

    def key(self, model: Model, prompts: dict[str, list[str]]) -> str:
        settings = {k: v for k, v in self.settings.identity().items() if k != "orthogonalize"}
        return content_hash({"version": RECIPE_VERSION, "model": model.id, "settings": settings,
                             "prompts": {k: content_hash(v) for k, v in sorted(prompts.items())}})

    # --- the direction -----------------------------------------------------------------
    def direction_folder(self, model: Model) -> Path:
        prompts = self.prompts()
        if self.needs_selection():
            for kind in ("harmful", "harmless"):
                if not prompts[f"{kind}_val"]:
                    raise HarnessError(f"attack=refusal_ablation: no held-out {kind} prompts to select the layer and "
                                       f"position with (attack.{kind}={getattr(self, kind).name} has "
                                       f"{len(prompts[f'{kind}_train'])} after exclusions, all used by attack.n_train="
                                       f"{self.n_train}); lower attack.n_train, or give attack.layer and attack.position")
        return cached_folder(model.cache_dir / "directions", f"{model.name}-{self.key(model, prompts)}",
                             lambda out: self.build(model, prompts, out), marker=SELECTION)

    def build(self, model: Model, prompts: dict[str, list[str]], out: Path) -> None:
        import torch

        hf = model.hf
        n_layers, n_positions = len(decoder_layers(hf)), rd.post_instruction_tokens(model)
        for layer in [self.layer, *(self.layers or ())]:
            rd.check_layer(layer, n_layers, model)
        for position in [self.position, *(self.positions or ())]:
            rd.check_position(position, n_positions, model)
        log.info("refusal direction of %s: mean activations on %d harmful and %d harmless prompts", model.name,
                 len(prompts["harmful_train"]), len(prompts["harmless_train"]))
        diffs = (rd.mean_activations(hf, model, prompts["harmful_train"], n_positions, self.batch_size)
                 - rd.mean_activations(hf, model, prompts["harmless_train"], n_positions, self.batch_size))
        refusal = rd.refusal_token_ids(model, self.refusals)
        if self.needs_selection():
            layers = [self.layer] if self.layer is not None else list(self.layers or
                                                                     [i for i in range(n_layers) if i < self.max_layer_fraction * n_layers])
            positions = [self.position] if self.position is not None else list(self.positions or range(-n_positions, 0))
            log.info("refusal direction: scoring %d candidates (layers %s, positions %s) on %d + %d held-out prompts",
                     len(layers) * len(positions), layers, positions, len(prompts["harmful_val"]),
                     len(prompts["harmless_val"]))
            chosen = rd.select(hf, model, diffs, layers, positions, prompts["harmful_val"], prompts["harmless_val"],
                               refusal, self.max_layer_fraction, self.max_kl, self.batch_size)
        else:
            if rd.degenerate(diffs, self.layer, self.position):
                raise HarnessError(f"attack.layer={self.layer} attack.position={self.position}: the difference of means is "
                                   "zero there (layer 0 at a template token: the same embedding in every prompt); "
                                   "choose a later layer")
            chosen = {"layer": self.layer, "position": self.position, "how": "given: attack.layer and attack.position",
                      "candidates": []}
        diff = diffs[chosen["layer"], chosen["position"]]
        torch.save({"direction": diff / torch.linalg.vector_norm(diff), "mean_diff": diff, "layer": chosen["layer"],
                    "position": chosen["position"]}, out / DIRECTION)
        tok = model.tokenizer
        ids = model.prompt_ids((Message(role="user", content="x"),))[-n_positions:]
        record = {"model": model.id, "layer": chosen["layer"], "position": chosen["position"], "how": chosen["how"],
                  "layers": n_layers, "post_instruction_tokens": [tok.decode([i]) for i in ids],
                  "refusal_tokens": [tok.decode([i]) for i in refusal],
                  "prompts": {k: len(v) for k, v in prompts.items()},
                  "sources": {"harmful": self.harmful.name, "harmless": self.harmless.name,
                              "excluded": [b.name for b in self.exclude]},
                  **{k: v for k, v in chosen.items() if k not in ("layer", "position", "how")}}
        examples = [Example(messages=(Message(role="user", content=p),), response="", kind=f"refusal direction {kind}")
                    for kind in ("harmful", "harmless") for split in ("train", "val") for p in prompts[f"{kind}_{split}"]]
        contamination.record(out, examples, contamination.trained_prompts(model))
        (out / SELECTION).write_text(json.dumps(record, indent=1) + "\n")

    def folded(self, model: Model, folder: Path) -> Model:
        """The orthogonalised model folder (cached by the direction's key), as a card any engine loads."""
        from harness.training.loop import like

        def build(out: Path) -> None:
            import shutil

            import torch
            from transformers import AutoModelForCausalLM

            hf = AutoModelForCausalLM.from_pretrained(model.folder, dtype=torch.float32,
                                                      trust_remote_code=model.trust_remote_code)
            orthogonalize(hf, torch.load(folder / DIRECTION, weights_only=True)["direction"])
            hf.save_pretrained(out)
            model.tokenizer.save_pretrained(out)
            for name in (SELECTION, contamination.FILE):
                shutil.copy(folder / name, out / name)

        name = f"{model.name}-ablated"
        out = cached_folder(model.cache_dir / "models", f"{name}-{folder.name.removeprefix(model.name + '-')}", build)
        return like(model, out, name)

    # --- the attack --------------------------------------------------------------------
    def tamper(self, model: Model, defense: Defense | None = None) -> Model:
        folder = self.direction_folder(model)
        selection = json.loads((folder / SELECTION).read_text())
        self.selection = {"layer": selection["layer"], "position": selection["position"],
                          "method": "weights" if self.orthogonalize else "hooks"}
        log.info("refusal direction of %s: layer %d, position %d (%s); %s", model.name, selection["layer"],
                 selection["position"], selection["how"], folder)
        return self.folded(model, folder) if self.orthogonalize else AblatedModel(model, folder)

    def requests(self, behaviors: Sequence[Behavior], model: Model, sampling: Sampling) -> list[Request]:
        if self.selection is None:
            raise HarnessError("attack=refusal_ablation: requests before tamper(model): the direction is chosen there")
        return [self.ask(b, sampling, params=dict(self.selection)) for b in behaviors]
