"""OpenAI-compatible engine: hosted models and any server speaking the OpenAI API (`vllm serve` included).

Two APIs, chosen by `api`:
- `chat`: the server renders the chat with its own template. A prefill is sent as a final
  assistant message with vLLM's `continue_final_message=True, add_generation_prompt=False`,
  so the model continues it; servers without that extension cannot prefill (set
  `continue_final_message: false` and the engine says so before sending anything).
- `completions`: the harness renders the prompt itself, exactly like the HF and vLLM engines
  (`model.prompt_ids(messages, prefill)`, the card's template with the assistant turn open,
  then the prefill's tokens). Sent as token ids by default, so the server sees the very same
  tokens; `send_token_ids: false` sends the rendered text instead.

`n` samples, `seed`, `temperature`, `top_p` and `max_tokens` go in the request (greedy
requests ask for one sample and repeat it n times); `top_k` (not in
the OpenAI API) goes in `extra_body` where the server takes it (vLLM does), otherwise a
sampling value with top_k > 0 is refused up front.

Failures. Before the first request the engine asks `/v1/models`: a server that is down, a
wrong key, or a model the server does not serve is a `HarnessError` naming the fix. A
request the server rejects (4xx: a bad parameter, say) stops the run with the server's
message. A request that still fails after the client's own retries (timeouts, 5xx, a
malformed body) yields no completion; after `max_failures` of them, or at the end of the
run, the engine raises a `HarnessError` counting them. Completions that succeeded were
already yielded (and so written by the run loop); a re-run generates only the missing ones.
No failed request is ever turned into a completion, so nothing unanswered gets a verdict.

The API key is read from the environment variable `api_key_env`; it is never stored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer

from harness.engine.base import Engine
from harness.errors import HarnessError, RequestsFailed, choices
from harness.model.base import Model
from harness.settings import Settings
from harness.types import Completion, Request
from harness.util.calls import concurrently
from harness.util.openai_client import openai_client
from harness.util.progress import progress
from harness.util.secrets import public_url

log = logging.getLogger(__name__)

FINISH = {"stop": "stop", "length": "length"}  # anything else (content_filter, tool_calls, ...) ends the text: "stop"


@dataclass
class Choice:
    text: str
    finish_reason: Literal["stop", "length"]
    completion_tokens: int | None  # None when the server reports only a total over n choices


class ChatAPI:
    """POST /v1/chat/completions; the server applies its own chat template."""

    def __init__(self, engine: OpenAIEngine) -> None:
        self.engine = engine

    def check(self, request: Request) -> None:
        if request.prefill and not self.engine.continue_final_message:
            raise HarnessError(
                "engine=openai with engine.api=chat cannot prefill on this server (engine.continue_final_message=false): "
                "the OpenAI chat API has no way to continue an assistant message. Use engine.api=completions "
                "(the harness renders the prompt from the model's chat template, the prefill included), or a server "
                "that supports vLLM's continue_final_message and engine.continue_final_message=true."
            )

    def call(self, client: Any, request: Request, params: dict[str, Any]) -> tuple[list[Choice], int]:
        messages = self.engine.model.chat(request.messages)
        if request.prefill:
            messages.append({"role": "assistant", "content": request.prefill})
            params["extra_body"] = {**params.get("extra_body", {}), "continue_final_message": True, "add_generation_prompt": False}
        response = client.chat.completions.create(model=self.engine.served_model, messages=messages, **params)
        texts = [(answer(c.message.content), c.finish_reason) for c in sorted(response.choices, key=lambda c: c.index)]
        return self.engine.parse_choices(texts, response, request), usage(response, "prompt_tokens")


class CompletionsAPI:
    """POST /v1/completions with the prompt rendered by the harness (token ids or text)."""

    def __init__(self, engine: OpenAIEngine) -> None:
        self.engine = engine

    def check(self, request: Request) -> None:
        return None  # any prefill works: it is part of the rendered prompt

    def call(self, client: Any, request: Request, params: dict[str, Any]) -> tuple[list[Choice], int]:
        model = self.engine.model
        ids = model.prompt_ids(request.messages, request.prefill)
        if self.engine.send_token_ids:
            prompt: Any = ids
        else:
            prompt = model.template_text(request.messages) + request.prefill
            params["extra_body"] = {**params.get("extra_body", {}), "add_special_tokens": False}
        response = client.completions.create(model=self.engine.served_model, prompt=prompt, **params)
        texts = [(answer(c.text), c.finish_reason) for c in sorted(response.choices, key=lambda c: c.index)]
        return self.engine.parse_choices(texts, response, request), usage(response, "prompt_tokens") or len(ids)


APIS = {"chat": ChatAPI, "completions": CompletionsAPI}

# The server rejected the request itself: the same request would fail again, so the run stops.
FATAL = ("BadRequestError", "AuthenticationError", "PermissionDeniedError", "NotFoundError", "UnprocessableEntityError",
         "ConflictError")


def answer(text: Any) -> str:
    """A choice's text. `null` or a missing text is a failed request, never an empty answer (which the
    judges would count as a refusal); an empty string the model generated is kept as it is."""
    if not isinstance(text, str):
        raise RequestFailed(f"the server answered no text ({'null' if text is None else type(text).__name__})")
    return text


def usage(response: Any, field: str) -> int:
    return int(getattr(getattr(response, "usage", None), field, 0) or 0)


class RequestFailed(Exception):
    """A request that failed after the client's retries, or got no answer text (the run goes on, up to max_failures)."""


class OpenAISettings(Settings):
    # How requests travel (retries, concurrency, checks) cannot change a completion: not in the identity.
    cosmetic = frozenset({"api_key_env", "concurrency", "max_retries", "timeout", "top_k_supported",
                          "continue_final_message", "check_model", "max_failures", "chunk_size", "progress"})
    base_url: Annotated[str | None, PlainSerializer(public_url)] = None  # null = the OpenAI API
    served_model: str | None = None  # null = the card's name
    api: Literal["chat", "completions"] = "chat"
    api_key_env: str = "OPENAI_API_KEY"  # the NAME of the variable holding the key; the key is never stored
    concurrency: int = Field(8, ge=1)
    max_retries: int = Field(4, ge=0)
    timeout: float = Field(120.0, gt=0)
    top_k_supported: bool = True
    continue_final_message: bool = True
    send_token_ids: bool = True
    check_model: bool = True
    max_failures: int = Field(10, ge=0)
    chunk_size: int = Field(64, ge=1)
    progress: bool = True


class OpenAIEngine(Engine):
    name = "openai"

    Settings = OpenAISettings

    def __init__(self, model: Model, *args: Any, **values: Any) -> None:
        super().__init__(model, *args, **values)
        self.served_model = self.settings.served_model or model.name
        self.protocol = APIS[self.api](self)
        self._client: Any = None
        self._checked = False

    @property
    def renders_prompt(self) -> bool:  # type: ignore[override]
        return self.api == "completions"  # on the chat API the server applies its own template

    def describe(self) -> dict[str, Any]:
        """What decides the outputs: endpoint, served model, API and prompt form. Never the key."""
        out = {**super().describe(), "served_model": self.served_model}
        if self.api != "completions":
            out.pop("send_token_ids")  # only the completions API sends token ids
        return out

    def preflight(self) -> None:
        self.client()  # the key (or a base_url that needs none)
        self.check_server()  # the server is up, takes the key, serves the model

    def context_length(self) -> int | None:
        return None  # the server knows its own context and refuses what does not fit (a 400: the run stops)

    # --- client and up-front checks ---------------------------------------------------
    def where(self) -> str:
        return public_url(self.base_url) or "the OpenAI API"

    def client(self) -> Any:
        """The OpenAI client, built on first need; the key comes from the environment only."""
        if self._client is None:
            self._client = openai_client(option="engine", who="engine=openai", api_key_env=self.api_key_env,
                                         base_url=self.base_url, max_retries=self.max_retries, timeout=self.timeout)
        return self._client

    def check_server(self) -> None:
        """Ask /v1/models once: is the server up, does the key work, does it serve the model?"""
        if self._checked or not self.check_model:
            return
        import openai

        try:
            served = [m.id for m in self.client().with_options(max_retries=min(self.max_retries, 1)).models.list()]
        except openai.APIConnectionError as exc:
            raise HarnessError(
                f"engine=openai: cannot reach {self.where()} ({type(exc).__name__}: {self.redact(str(exc))}). "
                f"Is the server running? Start one with `vllm serve <model folder> --port 8000` and set "
                f"engine.base_url=http://127.0.0.1:8000/v1, or fix engine.base_url."
            ) from None
        except openai.AuthenticationError as exc:
            raise HarnessError(
                f"engine=openai: {self.where()} refused the key from ${self.api_key_env} "
                f"({self.redact(str(exc))[:200]}); export a valid key in {self.api_key_env} or set engine.api_key_env."
            ) from None
        except openai.APIError as exc:
            raise HarnessError(
                f"engine=openai: {self.where()} did not list its models ({type(exc).__name__}: {self.redact(str(exc))[:200]}); "
                f"if the server has no /v1/models, set engine.check_model=false."
            ) from None
        if self.served_model not in served:
            raise HarnessError(
                f"engine.served_model={self.served_model!r} is not served by {self.where()}; it serves: {choices(served)}. "
                f"Set engine.served_model to one of those (it defaults to the model card's name)."
            )
        self._checked = True

    def params(self, request: Request) -> dict[str, Any]:
        s = request.sampling
        # greedy samples are identical: ask for one and repeat it (vLLM refuses greedy n > 1)
        params: dict[str, Any] = {"n": 1 if s.greedy else s.n, "max_tokens": s.max_tokens, "seed": s.seed,
                                  "temperature": s.temperature}
        if not s.greedy:
            params["top_p"] = s.top_p
            if s.top_k:
                params["extra_body"] = {"top_k": s.top_k}
        return params

    def check(self, request: Request) -> None:
        s = request.sampling
        if s.top_k and not s.greedy and not self.top_k_supported:
            raise HarnessError(
                f"sampling.top_k={s.top_k}: the OpenAI API has no top_k and engine.top_k_supported=false for "
                f"{self.where()}. Use sampling.top_k=0 (off), or a server that takes top_k (vLLM) with "
                f"engine.top_k_supported=true."
            )
        self.protocol.check(request)

    # --- generation ---------------------------------------------------------------------
    def parse_choices(self, texts: list[tuple[str, str | None]], response: Any, request: Request) -> list[Choice]:
        s = request.sampling
        asked = 1 if s.greedy else s.n
        if len(texts) != asked:
            raise RequestFailed(f"the server answered {len(texts)} choices for n={asked}")
        total = usage(response, "completion_tokens")
        got = [Choice(text=text, finish_reason=FINISH.get(reason or "stop", "stop"),  # type: ignore[arg-type]
                      completion_tokens=total if asked == 1 else None) for text, reason in texts]
        return got * s.n if s.greedy else got

    def one(self, request: Request) -> list[Completion]:
        import openai

        try:
            got, prompt_tokens = self.protocol.call(self.client(), request, self.params(request))
        except openai.APIStatusError as exc:
            if type(exc).__name__ in FATAL:
                hint = (" (prefill on the chat API needs vLLM's continue_final_message; engine.api=completions "
                        "works on any completions server)") if request.prefill and self.api == "chat" else ""
                raise HarnessError(
                    f"engine=openai: {self.where()} rejected a request for {self.served_model!r}: "
                    f"{type(exc).__name__}: {self.redact(str(exc))[:300]}{hint}"
                ) from None
            raise RequestFailed(f"{type(exc).__name__}: {self.redact(str(exc))[:200]}") from None
        except (openai.OpenAIError, ValueError, AttributeError, TypeError) as exc:  # connection, timeout, malformed body
            raise RequestFailed(f"{type(exc).__name__}: {self.redact(str(exc))[:200]}") from None
        return [
            Completion(
                request=request,
                sample=i,
                text=c.text,
                prompt_tokens=prompt_tokens,
                completion_tokens=c.completion_tokens if c.completion_tokens is not None else self.count(c.text),
                finish_reason=c.finish_reason,
                engine=self.name,
                model=self.model.id,
            )
            for i, c in enumerate(got)
        ]

    def count(self, text: str) -> int:
        """Tokens of one of n choices (servers report only the total): the card's tokenizer, when it has one."""
        try:
            return self.model.count_tokens(text)
        except Exception:  # noqa: BLE001 - a hosted model's card may have no local tokenizer
            return 0

    def stream(self, requests: Sequence[Request]) -> Iterator[list[Completion]]:
        for r in requests:
            self.check(r)
        if not requests:
            return
        self.client()  # built once here, not raced for by the worker threads
        self.check_server()
        if self.api == "chat" and self.model.chat_template:
            log.warning("engine=openai, api=chat: the server renders prompts with its own chat template, not the "
                        "card's chat_template; use engine.api=completions to render with the card's")
        failures: list[str] = []
        fatal: BaseException | None = None
        done = 0
        chunk: list[Completion] = []
        total = sum(r.sampling.n for r in requests)
        calls = concurrently(self.one, requests, self.concurrency)  # Ctrl-C: queued calls never start
        try:
            with progress(total=total, desc=f"generating [{self.served_model} @ {self.where()}]", unit="seq",
                      disable=not self.progress) as bar:
                for _, out, error in calls:
                    if isinstance(error, RequestFailed):
                        failures.append(str(error))
                        log.warning("engine=openai: a request failed after retries: %s", error)
                        if len(failures) > self.max_failures:
                            fatal = RequestsFailed(self.failed(failures, total, done, stopped=True))
                            break
                        continue
                    if isinstance(error, HarnessError):
                        fatal = error
                        break
                    if error is not None:
                        raise error
                    chunk.extend(out)
                    done += len(out)
                    bar.update(len(out))
                    if len(chunk) >= self.chunk_size:
                        yield chunk
                        chunk = []
                if chunk:
                    yield chunk
        finally:
            calls.close()
        if fatal is not None:
            raise fatal
        if failures:
            raise RequestsFailed(self.failed(failures, total, done, stopped=False))

    def failed(self, failures: list[str], total: int, done: int, stopped: bool) -> str:
        how = f"stopped after {len(failures)} failed requests (engine.max_failures={self.max_failures})" if stopped \
            else f"{len(failures)} requests failed"
        return (f"engine=openai: {how} at {self.where()}, each after {self.max_retries} retries; first: {failures[0]}. "
                f"The {done} of {total} completions that succeeded are saved; re-run the same command to generate the rest.")

    def redact(self, text: str) -> str:
        key = os.environ.get(self.api_key_env)
        return text.replace(key, "***") if key else text
