"""Engines turn requests into completions.

`stream` yields completions batch by batch so the run loop can write each batch to disk as
soon as it exists; `generate` is the same, collected and in request order. `check_fits`
refuses, before anything is generated, a request whose prompt plus `max_tokens` does not
fit in the model's context (a model would otherwise run past its positions silently, or for
ever on an absurd `max_tokens`). `stamped` fills in what the model saw (`Completion.rendered`, the
messages with the card's system prompt, and `prompt_text`, the template's text and the prefill);
the run loop calls it on every batch it stores, so every engine and wrapper records it in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from harness.errors import HarnessError
from harness.model.base import Model
from harness.settings import Configured
from harness.types import Completion, Message, Request

log = logging.getLogger(__name__)

class Engine(Configured):
    """`describe()` (part of the run hash) is the name and the settings minus cosmetic ones (speed, progress)."""

    name = "engine"
    option = "engine"
    renders_prompt = True  # the harness renders the chat template itself (False: a server applies its own)

    def __init__(self, model: Model, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        self.model = model

    def preflight(self) -> None:
        """Check what the engine needs from outside (a package, a server, a key) before anything expensive
        runs; the run loop calls it first, on an engine built for the undefended model. Nothing by default."""

    def context_length(self) -> int | None:
        """Prompt + generated tokens the engine can hold; None when it cannot know (a remote server)."""
        return self.model.context_length

    def check_fits(self, requests: Sequence[Request]) -> None:
        """A HarnessError naming the first request whose prompt + max_tokens exceeds the context."""
        limit = self.context_length()
        if limit is None:
            return
        for r in requests:
            prompt = len(self.model.prompt_ids(r.messages, r.prefill))
            if prompt + r.sampling.max_tokens > limit:
                raise HarnessError(
                    f"behavior {r.behavior_id!r}: its prompt has {prompt} tokens and sampling.max_tokens="
                    f"{r.sampling.max_tokens}, {prompt + r.sampling.max_tokens} in all, more than the {limit} tokens "
                    f"engine={self.name} can hold for model {self.model.name!r} (its positions, or "
                    f"engine.max_model_len where set); lower sampling.max_tokens or shorten the prompt."
                )

    def stream(self, requests: Sequence[Request]) -> Iterator[list[Completion]]:
        raise NotImplementedError

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        self.check_fits(requests)
        order = {r.key: i for i, r in enumerate(requests)}
        out = [c for batch in self.stream(requests) for c in batch]
        return sorted(out, key=lambda c: (order[c.request.key], c.sample))

    def rendering(self, request: Request) -> dict[str, Any]:
        """What the model is shown for `request`, as `Completion` fields: `rendered`, the messages handed to the
        chat template (or the chat API) with the card's system prompt; `prompt_text`, the template's text with
        the assistant turn open followed by the prefill (None where a server renders it). A wrapper (a filter
        defense, `inner`) answers for the engine it wraps."""
        inner = getattr(self, "inner", None)
        if isinstance(inner, Engine):
            return inner.rendering(request)
        rendered = tuple(Message.model_validate(m) for m in self.model.chat(request.messages))
        text = None
        if self.renders_prompt:
            try:
                text = self.model.template_text(request.messages) + request.prefill
            except Exception as exc:  # noqa: BLE001 - never lose a generated batch over bookkeeping
                log.warning("engine=%s: could not render the prompt text to store it (%s: %s)", self.name,
                            type(exc).__name__, exc)
        return {"rendered": rendered, "prompt_text": text}

    def stamped(self, completions: Sequence[Completion]) -> list[Completion]:
        """`completions` with `rendering` filled in where the engine left it empty (rendered once per request)."""
        seen: dict[str, dict[str, Any]] = {}
        out = []
        for c in completions:
            if c.rendered is None:
                if c.request.key not in seen:
                    seen[c.request.key] = self.rendering(c.request)
                c = c.model_copy(update=seen[c.request.key])
            out.append(c)
        return out
