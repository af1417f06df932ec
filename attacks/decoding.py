"""Generation exploitation (Huang et al. 2024, "Catastrophic jailbreak of open-source LLMs
via exploiting generation"): ask each behavior under many decoding configurations, with and
without a system prompt; a behavior is broken when any configuration yields a harmful output.

Configurations (each one `Request` with its own `Sampling`; `Request.params` records it):
- greedy;
- temperature t for each t in `temperatures` (top-p and top-k from `base`, neutral by default);
- top-p p for each p in `top_ps` (temperature and top-k from `base`);
- top-k k for each k in `top_ks` (temperature and top-p from `base`);
each with the system prompt and without it, `n` samples per sampled configuration (greedy:
one). The default grid is the paper's: 1 + 20 + 20 + 9 = 50 decoding configurations x 2.
The reference code varied one knob and left the others at the model's `generation_config`
defaults (e.g. Llama-2's top_p 0.9, and transformers' top_k 50); here the knobs a strategy does
not vary are explicit (`base`: temperature 1, top-p 1, top-k off, i.e. plain sampling).

All requests go to the engine at once: the HF engine samples every row with its own
parameters and seed, so the whole sweep is one batched generation, not a loop of calls.

"With" and "without" the system prompt, for the model in use (`system_turns`):
- with: the system prompt the model runs with (its card's, or the one `defense=system_prompt`
  installed); if it has none, its card's `safety_system_prompt` (Llama-2's official prompt, as
  in the paper); if neither, the template's own default when the template inserts one
  (Qwen2.5), else the generic safety prompt of `defense=system_prompt`.
- without: the rendered chat carries no system prompt text: no system turn where the template
  then adds none (Llama-2 with no card prompt: the paper's setting), else an explicitly empty
  system turn (SmolLM2 and Qwen2.5, whose templates insert a default prompt; or a model that a
  defense gave a system prompt: with `defense=system_prompt` the sweep's "without" half removes
  that defense, so use `attack.system_prompts=[with]` to keep it on).
A template with no system role (Gemma, Mistral) runs "without" only; asking for "with" is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import Field, field_validator, model_validator

from harness.attack import Attack
from harness.errors import HarnessError, choices
from harness.model.base import Model
from harness.settings import Settings
from harness.types import Behavior, Message, Request, Sampling

SYSTEM_PROMPT_MODES = ("with", "without")
STRATEGIES = ("greedy", "temperature", "top_p", "top_k")
PROBE = "SYSTEM-PROMPT-PROBE"


def grid(values: Any, ok: Callable[[Any], bool], rule: str) -> tuple:
    values = list(values) if isinstance(values, Sequence) and not isinstance(values, str) else [values]
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float) or not ok(v)]
    if bad:
        raise ValueError(f"contains {choices(bad)}: {rule}")
    return tuple(sorted(set(values)))


class BaseSampling(Settings):
    """The knobs a strategy does not vary (plain sampling by default)."""

    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)


class DecodingSettings(Settings):
    greedy: bool = True
    temperatures: tuple[float, ...] = ()
    top_ps: tuple[float, ...] = ()
    top_ks: tuple[int, ...] = ()
    system_prompts: tuple[str, ...] = SYSTEM_PROMPT_MODES
    n: int | None = Field(None, ge=1)  # samples per sampled configuration; null = sampling.n
    base: BaseSampling = BaseSampling()

    @field_validator("temperatures", mode="before")
    @classmethod
    def positive(cls, value: Any) -> tuple:
        return grid(value, lambda t: t > 0, "temperatures must be > 0 (greedy is attack.greedy=true)")

    @field_validator("top_ps", mode="before")
    @classmethod
    def unit(cls, value: Any) -> tuple:
        return grid(value, lambda p: 0 < p <= 1, "top-p values must be in (0, 1]")

    @field_validator("top_ks", mode="before")
    @classmethod
    def counts(cls, value: Any) -> tuple:
        return grid(value, lambda k: isinstance(k, int) and k >= 1, "top-k values must be integers >= 1")

    @field_validator("system_prompts", mode="before")
    @classmethod
    def modes(cls, value: Any) -> tuple:
        modes = [value] if isinstance(value, str) else list(value)
        if not modes or any(m not in SYSTEM_PROMPT_MODES for m in modes):
            raise ValueError(f"choose one or both of {choices(SYSTEM_PROMPT_MODES)}")
        return tuple(dict.fromkeys(modes))

    @model_validator(mode="after")
    def some_configuration(self) -> DecodingSettings:
        if self.base.temperature == 0 and (self.top_ps or self.top_ks):
            raise ValueError("attack.base.temperature=0 would make every top-p and top-k configuration greedy; "
                             "use a temperature > 0")
        if not (self.greedy or self.temperatures or self.top_ps or self.top_ks):
            raise ValueError("attack=decoding has no configuration: set attack.greedy=true or give "
                             "attack.temperatures, attack.top_ps or attack.top_ks")
        return self


class DecodingAttack(Attack):
    name = "decoding"
    Settings = DecodingSettings

    # --- configurations -------------------------------------------------------------
    def configurations(self, sampling: Sampling) -> list[tuple[dict[str, Any], Sampling]]:
        """(params, sampling) for every decoding configuration, in the order of STRATEGIES."""
        n = self.n or sampling.n
        common = {"max_tokens": sampling.max_tokens, "seed": sampling.seed}
        base = {"temperature": self.base.temperature, "top_p": self.base.top_p, "top_k": self.base.top_k}
        out = []
        if self.greedy:
            out.append(({"strategy": "greedy", "value": None}, Sampling(n=1, **common)))
        for field, values in (("temperature", self.temperatures), ("top_p", self.top_ps), ("top_k", self.top_ks)):
            for v in values:
                out.append(({"strategy": field, "value": v}, Sampling(**{**base, field: v}, n=n, **common)))
        return out

    def system_turns(self, model: Model) -> dict[str, tuple[Message, ...]]:
        """The leading messages for each system-prompt mode (see the module docstring)."""
        from defenses.system_prompt import GENERIC

        has_role, template_default = probe_template(model)
        prompt = model.system_prompt or model.safety_system_prompt
        if prompt:
            with_turns: tuple[Message, ...] = (Message(role="system", content=prompt),)
        elif template_default:
            with_turns = ()
        else:
            with_turns = (Message(role="system", content=GENERIC),)
        if model.system_prompt is None and not template_default:
            without: tuple[Message, ...] = ()
        else:
            without = (Message(role="system", content=""),)
        if not has_role and "with" in self.system_prompts:
            raise HarnessError(f"model {model.name!r}: its chat template has no system role, so the sweep cannot run "
                               f"'with' a system prompt; use attack.system_prompts=[without]")
        return {"with": with_turns, "without": without}

    def requests(self, behaviors: Sequence[Behavior], model: Model, sampling: Sampling) -> list[Request]:
        turns = self.system_turns(model)
        configs = self.configurations(sampling)
        out = []
        for b in behaviors:
            user = Message(role="user", content=b.query())
            for mode in self.system_prompts:
                for params, s in configs:
                    out.append(self.ask(b, s, messages=(*turns[mode], user), params={**params, "system_prompt": mode}))
        return out


def probe_template(model: Model) -> tuple[bool, bool]:
    """(does the template take a system turn, does it insert a default one when none is given)."""
    tok = model.tokenizer
    user = {"role": "user", "content": "Hello"}

    def render(messages: list[dict[str, str]]) -> str:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    try:
        with_system = render([{"role": "system", "content": PROBE}, user])
    except Exception:  # noqa: BLE001 - templates reject a system turn by raising (jinja TemplateError and others)
        return False, False
    bare = render([user])
    if PROBE not in with_system:
        return True, False
    before, after = with_system.split(PROBE, 1)
    return True, bare.startswith(before) and bare.endswith(after) and len(bare) >= len(before) + len(after)
