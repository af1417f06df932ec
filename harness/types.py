"""The typed core: what flows between benchmarks, attacks, engines, judges and the report.

Every value here is immutable and JSON-serialisable, so a `Record` is one line of
`records.jsonl` and can be read back exactly (`Record.model_validate_json`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # inf/nan cannot be written as JSON

    def digest(self) -> str:
        """A stable content hash (16 hex digits) of this value."""
        return content_hash(self.model_dump(mode="json"))


def content_hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    # surrogatepass: a lone surrogate (a model can emit one) hashes too; every other text hashes as plain UTF-8
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Behavior(Frozen):
    """One test case of a benchmark."""

    id: str
    prompt: str
    category: str = ""
    target: str = ""  # affirmative response prefix ("Sure, here is ...")
    context: str = ""  # HarmBench contextual behaviors: the context string
    harmful_prefix: str = ""  # a harmful answer prefix, when the benchmark ships one (HEx-PHI)
    label: Literal["harmful", "benign"] = "harmful"
    reference: str = ""  # reference answer for utility benchmarks (GSM8K final number)
    source: str = ""

    def query(self) -> str:
        """The user turn: the request, after its context when it has one (HarmBench's format)."""
        return f"{self.context}\n\n---\n\n{self.prompt}" if self.context else self.prompt


class Message(Frozen):
    role: Literal["system", "user", "assistant"]
    content: str


class Sampling(Frozen):
    """Decoding parameters. temperature 0 means greedy; top_k 0 means off."""

    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    max_tokens: int = Field(64, ge=1)
    n: int = Field(1, ge=1)
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class Cost(Frozen):
    """What an attack spent to produce one behavior's request (carried to records; not part of the request key).

    `queries`: generations asked of the target while searching (the final evaluation is one more);
    `forward`/`backward`: white-box passes (GCG: candidate evaluations and gradients);
    `tokens`: tokens the search generated or scored; `attacker_queries`: calls to an attacker model."""

    queries: int = 0
    forward: int = 0
    backward: int = 0
    tokens: int = 0
    attacker_queries: int = 0
    seconds: float = 0.0


class Request(Frozen):
    """What an engine is asked to generate: a chat, an optional assistant prefill, sampling."""

    behavior_id: str
    messages: tuple[Message, ...]
    prefill: str = ""  # text the assistant turn starts with; the completion continues it
    prefill_tokens: int = 0  # length of the prefill in the target model's tokens
    sampling: Sampling = Sampling()
    attack: str = "direct"
    params: dict[str, Any] = Field(default_factory=dict)  # attack parameters, e.g. {"k": 10}
    # bookkeeping, left out of the key (the same request costs the same completion):
    cost: Cost | None = None  # what the attack spent on this behavior
    adaptive: bool | None = None  # did the attack optimize against the defended pipeline (None: not stated)

    UNKEYED: ClassVar[frozenset[str]] = frozenset({"cost", "adaptive"})

    @property
    def key(self) -> str:
        return content_hash(self.model_dump(mode="json", exclude=set(self.UNKEYED)))


class Completion(Frozen):
    request: Request
    sample: int = 0  # index among the request's n samples
    text: str  # the continuation only; the prefill stays in request.prefill
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: Literal["stop", "length", "error"] = "stop"
    engine: str = ""
    model: str = ""
    blocked: str = ""  # why an inference-time defense replaced the output with a refusal ("" = it did not)
    # bookkeeping, in no key and not in digest() (a stored label still finds its completion): what the model saw,
    # filled by the run loop (Engine.stamped) for every completion it stores; None in records written before.
    rendered: tuple[Message, ...] | None = None  # the messages handed to the chat template or API, the card's system prompt in
    prompt_text: str | None = None  # the chat template's text, assistant turn open, then the prefill (None: a server rendered it)

    UNKEYED: ClassVar[frozenset[str]] = frozenset({"rendered", "prompt_text"})

    def digest(self) -> str:
        """The content hash of the completion without the bookkeeping fields (what a human label is stored under)."""
        return content_hash(self.model_dump(mode="json", exclude=set(self.UNKEYED)))


class Verdict(Frozen):
    """A judge's label. A judge failure sets `error` and leaves `harmful` None: never safe, never unsafe."""

    harmful: bool | None
    refused: bool | None = None  # did the model decline (over-refusal on benign prompts)
    score: float | None = None
    judge: str
    rationale: str = ""
    error: str = ""
    refusal_at: int | None = None  # where the refusal starts in the completion (characters), when the judge knows
    beside: dict[str, bool | None] = Field(default_factory=dict)  # other judges' `harmful`, by name (judge/panel.py)


RECORD_SCHEMA = 1  # the records.jsonl line format; lines written before the field existed are this format too
# The recipe version: part of every training cache key (harness.training.loop) and run hash (harness.run.loop). Every setting
# is always in those keys (no field is left out to keep an old key valid); when how a key is derived, or what a
# setting means, changes, bump this once: every trained model and run is re-keyed together (README, "Caching").
# 1: keys before this constant existed (unset newer options were left out of them); 2: every field always in.
RECIPE_VERSION = 2


class Record(Frozen):
    """One line of records.jsonl: a judged completion, with the hash of the set-up that produced it."""

    schema_version: int = RECORD_SCHEMA
    run: str  # hash of model + defense + engine settings: the generation set-up
    model: str
    defense: str
    benchmark: str
    behavior: Behavior
    completion: Completion
    verdict: Verdict

    @property
    def key(self) -> str:
        """Identifies the generation: the same key means the same completion can be reused."""
        return f"{self.run}:{self.completion.request.key}:{self.completion.sample}"
