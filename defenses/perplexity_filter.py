"""Perplexity filter (Jain et al. 2023, "Baseline defenses"; JailbreakBench's filter): block
prompts whose text is too unlikely under a reference language model.

Two scores of the user's text (every user turn; system prompts are the defender's), both log
perplexities under the reference model (the embedded SmolLM2 by default):

- `whole`: mean negative log-likelihood per token over the whole prompt;
- `window`: the largest mean over any `window` consecutive tokens (catches a gibberish
  suffix hidden in a long natural prompt).

The threshold is not hand-set: it is calibrated to a stated false-positive rate `fpr` on
benign prompts (AlpacaEval instructions `calibration_offset .. +calibration_count`, a slice no
recipe trains on and no default run reports): the conformal quantile, so that at most `fpr` of
the calibration prompts would be blocked. `mode: both` blocks when either score is over its
threshold, each calibrated at fpr/2 (the union stays at most fpr on calibration). Thresholds and
calibration scores are cached in `<cache_dir>/perplexity_filter/`. A blocked request is
answered with the refusal; `Completion.blocked` says which score, its value and the threshold.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from harness.benchmark import Benchmark
from harness.defense import Defense
from harness.engine.base import Engine
from harness.engine.filtering import REFUSAL, FilteredEngine, Screen, user_text
from harness.errors import HarnessError
from harness.model.base import Model
from harness.settings import Named, Ref, Settings
from harness.types import Request, content_hash

log = logging.getLogger(__name__)


class PerplexitySettings(Settings):
    cosmetic = frozenset({"tokens_per_batch"})
    reference: Annotated[Model, Ref]  # the reference language model (the embedded SmolLM2 by default)
    calibration: Annotated[Benchmark, Named]  # benign prompts the thresholds are calibrated on (AlpacaEval)
    mode: Literal["whole", "window", "both"] = "both"
    window: int = Field(10, ge=2)  # tokens per window (Jain et al. use 10)
    fpr: float = Field(0.05, gt=0.0, lt=1.0)  # false-positive rate on the calibration prompts
    calibration_offset: int = Field(400, ge=0)
    calibration_count: int = Field(200, ge=10)
    refusal: str = REFUSAL
    tokens_per_batch: int = Field(2048, ge=1)  # speed only: token positions per forward pass


def log_perplexities(model: Model, texts: Sequence[str], window: int, tokens_per_batch: int = 2048) -> list[tuple[float, float]]:
    """(whole, window) log perplexity of each text under `model`; the first token has no context and is not scored.

    Texts are sorted by length and batched up to `tokens_per_batch` token positions (the logits
    over the vocabulary dominate memory)."""
    import torch

    tok, hf = model.tokenizer, model.hf
    ids = [tok(t, add_special_tokens=False).input_ids[: tok.model_max_length] for t in texts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: dict[int, tuple[float, float]] = {}
    pad = tok.pad_token_id or 0
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and (stop + 1 - start) * len(ids[order[stop]]) <= tokens_per_batch:
            stop += 1
        part = [ids[i] for i in order[start:stop]]
        width = max(len(x) for x in part)
        batch = torch.tensor([x + [pad] * (width - len(x)) for x in part], device=hf.device)
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in part], device=hf.device)
        with torch.inference_mode():
            logits = hf(input_ids=batch, attention_mask=mask).logits[:, :-1]
            nll = -torch.log_softmax(logits.float(), -1).gather(-1, batch[:, 1:, None])[..., 0]
        for i, row, x in zip(order[start:stop], nll, part, strict=True):
            scored = row[: max(len(x) - 1, 0)]
            if len(scored) == 0:
                out[i] = (0.0, 0.0)
                continue
            means = scored.unfold(0, min(window, len(scored)), 1).mean(-1)
            out[i] = (float(scored.mean()), float(means.max()))
        start = stop
    return [out[i] for i in range(len(texts))]


def conformal_threshold(scores: Sequence[float], alpha: float) -> float:
    """The ceil((1 - alpha)(n + 1))-th smallest score: at most alpha of `scores` lie above it."""
    ordered = sorted(scores)
    k = math.ceil((1 - alpha) * (len(ordered) + 1))
    if k > len(ordered):
        raise HarnessError(f"defense.fpr={alpha}: {len(ordered)} calibration prompts cannot calibrate so small a "
                           f"false-positive rate; raise defense.calibration_count to at least {math.ceil(1 / alpha)}")
    return ordered[k - 1]


class PerplexityScreen(Screen):
    name = "perplexity_filter"

    def __init__(self, reference: Model, settings: PerplexitySettings, thresholds: dict[str, float],
                 tokens_per_batch: int = 2048) -> None:
        self.reference, self.settings, self.thresholds = reference, settings, thresholds
        self.tokens_per_batch = tokens_per_batch

    def describe(self) -> dict[str, Any]:
        return {"screen": self.name, "thresholds": self.thresholds}

    def inputs(self, requests: Sequence[Request]) -> list[str]:
        scores = log_perplexities(self.reference, [user_text(r) for r in requests], self.settings.window, self.tokens_per_batch)
        reasons = []
        for whole, window in scores:
            values = {"whole": whole, "window": window}
            over = [f"{k} log-perplexity {values[k]:.2f} > {t:.2f}" for k, t in self.thresholds.items() if values[k] > t]
            reasons.append(f"perplexity filter: {'; '.join(over)} (calibrated to {self.settings.fpr:.0%} false positives "
                           f"on {self.settings.calibration_count} benign prompts)" if over else "")
        return reasons


class PerplexityFilter(Defense):
    name = "perplexity_filter"
    Settings = PerplexitySettings

    def calibrate(self) -> dict[str, float]:
        """Thresholds per score, from the reference model's scores on the benign calibration slice (cached)."""
        s = self.settings
        key = content_hash({k: v for k, v in self.describe().items() if k != "refusal"})
        path = self.reference.cache_dir / "perplexity_filter" / f"{key}.json"
        if path.is_file():
            return json.loads(path.read_text())["thresholds"]
        prompts = [b.query() for b in self.calibration.load()][s.calibration_offset : s.calibration_offset + s.calibration_count]
        if len(prompts) < s.calibration_count:
            raise HarnessError(f"defense.calibration_offset={s.calibration_offset}, calibration_count={s.calibration_count}: "
                               f"{self.calibration.name} has only {len(prompts)} prompts there (set its limit to null)")
        scores = log_perplexities(self.reference, prompts, s.window, self.tokens_per_batch)
        kinds = ["whole", "window"] if s.mode == "both" else [s.mode]
        alpha = s.fpr / len(kinds)
        thresholds = {k: conformal_threshold([sc[0] if k == "whole" else sc[1] for sc in scores], alpha) for k in kinds}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"thresholds": thresholds, "settings": self.describe(), "scores": scores}))
        log.info("perplexity filter: thresholds %s at %.0f%% false positives on %d %s prompts", thresholds, 100 * s.fpr,
                 len(prompts), self.calibration.name)
        return thresholds

    def evasion_cost(self) -> Callable[[Sequence[str], Sequence[str]], list[float]]:
        """Adaptive attacks (GCG): sum over the filter's scores of how far each is above its threshold
        less `margin` (0 once the text would pass with that margin), in nats per token. The filter reads
        the prompt only, so the wanted answers do not enter."""
        thresholds = self.calibrate()

        def cost(texts: Sequence[str], targets: Sequence[str] | None = None, margin: float = 0.1) -> list[float]:
            scores = log_perplexities(self.reference, texts, self.settings.window, self.tokens_per_batch)
            return [sum(max(0.0, dict(zip(("whole", "window"), sc, strict=True))[k] - t + margin)
                        for k, t in thresholds.items()) for sc in scores]

        return cost

    def wrap(self, engine: Engine) -> Engine:
        screen = PerplexityScreen(self.reference, self.settings, self.calibrate(), self.tokens_per_batch)
        return FilteredEngine(engine, screen, refusal=self.settings.refusal)
