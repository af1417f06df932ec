"""Best-of-N jailbreaking (Hughes et al. 2024, "Best-of-N Jailbreaking"), text modality.

Each behavior's request is augmented `n` times at random and each augmentation is asked once,
sampled (temperature 1 by default, as in the paper); a behavior is broken at the first
augmentation the judge calls harmful. The three augmentations, composed in the paper's order,
with the reference code's probabilities from one strength `sigma` (0.4):

- word scrambling: each word longer than 3 characters has its middle characters shuffled
  (first and last kept) with probability sigma ** 0.5 (0.63);
- random capitalisation: each letter has its case flipped with probability sigma ** 0.5 (0.63);
- character noise: each printable character is moved one ASCII code up or down with probability
  sigma ** 3 (0.064), kept only when the result is printable ASCII (32..126).

The augmentations are seeded by (`seed`, behavior id, index): the same settings give the same
N prompts on every machine, so the N requests (each one line of records.jsonl, `params:
{"augmentation": i}`, i = 1..n) are reused by a re-run, which generates only the missing ones.
Every augmentation is generated (no early stop inside one run): ASR at every budget N' <= n, the
power-law fit and the cost a search stopping at the first success would have paid are computed
from the records (harness/analysis/best_of_n.py: `best_of_n.csv/.md`, `best_of_n.png`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from pydantic import Field, model_validator

from harness.attack import Attack
from harness.model.base import Model
from harness.settings import Settings
from harness.types import Behavior, Message, Request, Sampling, content_hash

PARAM = "augmentation"  # the request parameter: the augmentation's 1-based index (harness.analysis.best_of_n reads it)


class BestOfNSettings(Settings):
    n: int = Field(16, ge=1)  # augmentations per behavior: the largest budget N reported
    sigma: float = Field(0.4, gt=0.0, le=1.0)  # augmentation strength (the reference code's default 0.4)
    scramble: bool = True
    capitalize: bool = True
    noise: bool = True
    seed: int = 0  # of the augmentations (the samples' seeds come from each request, as for every request)
    temperature: float = Field(1.0, ge=0.0)  # the paper samples each augmentation at temperature 1
    top_p: float = Field(1.0, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def some_augmentation(self) -> BestOfNSettings:
        if not (self.scramble or self.capitalize or self.noise):
            raise ValueError("every augmentation is off (scramble, capitalize, noise): the N requests would be the "
                             "same prompt; turn at least one on (or use attack=decoding for sampling alone)")
        return self


def scramble_words(text: str, p: float, rng: random.Random) -> str:
    """Shuffle the middle characters of each word longer than 3 characters with probability p (words split on spaces)."""
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) > 3 and rng.random() < p:
            middle = list(word[1:-1])
            rng.shuffle(middle)
            words[i] = word[0] + "".join(middle) + word[-1]
    return " ".join(words)


def capitalize_randomly(text: str, p: float, rng: random.Random) -> str:
    """Flip the case of each letter with probability p."""
    return "".join(c.swapcase() if c.isalpha() and rng.random() < p else c for c in text)


def ascii_noise(text: str, p: float, rng: random.Random) -> str:
    """Move each printable character one code point up or down with probability p, when the result is printable ASCII."""
    out = []
    for c in text:
        if c.isprintable() and rng.random() < p:
            code = ord(c) + rng.choice((-1, 1))
            if 32 <= code <= 126:
                c = chr(code)
        out.append(c)
    return "".join(out)


def augment(text: str, rng: random.Random, sigma: float = 0.4, scramble: bool = True, capitalize: bool = True,
            noise: bool = True) -> str:
    """One random augmentation of `text` (the module docstring's three steps, in that order)."""
    if scramble:
        text = scramble_words(text, sigma ** 0.5, rng)
    if capitalize:
        text = capitalize_randomly(text, sigma ** 0.5, rng)
    if noise:
        text = ascii_noise(text, sigma ** 3, rng)
    return text


class BestOfNAttack(Attack):
    name = "best_of_n"
    Settings = BestOfNSettings

    def augmentation(self, behavior: Behavior, index: int) -> str:
        """The `index`-th (1-based) augmentation of the behavior's request: seeded by (seed, behavior id, index)."""
        rng = random.Random(int(content_hash({"seed": self.seed, "behavior": behavior.id, "augmentation": index}), 16))
        return augment(behavior.query(), rng, self.sigma, self.scramble, self.capitalize, self.noise)

    def requests(self, behaviors: Sequence[Behavior], model: Model, sampling: Sampling) -> list[Request]:
        s = Sampling(temperature=self.temperature, top_p=self.top_p, top_k=0, max_tokens=sampling.max_tokens, n=1,
                     seed=sampling.seed)
        return [self.ask(b, s, messages=(Message(role="user", content=self.augmentation(b, i)),), params={PARAM: i})
                for b in behaviors for i in range(1, self.n + 1)]
