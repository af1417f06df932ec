"""GCG adversarial suffixes (Zou et al. 2023, "Universal and transferable adversarial attacks").

White-box: a suffix at the end of the user turn is optimized, token by token along the
gradient, so that the model's answer starts with the behavior's affirmative target
("Sure, here is ..."). The optimizer lives in `attacks/gcg/`; this plugin decides what to
optimize and turns the found suffixes into ordinary requests (user turn = query + suffix),
so the standard engine + judge path evaluates them and the results land in the ASR tables.

Modes:
- `individual`: one suffix per behavior.
- `universal`: one suffix over the first `train_behaviors` behaviors (all when null),
  evaluated on every behavior.
Transfer: `optimize_on` (another model card) optimizes on that model and evaluates on the
run's model; `suffixes=<file>` evaluates the suffixes of a saved test-case file (matched by
behavior id; a universal suffix applies to every behavior) without optimizing.

Found suffixes are test cases (`attacks/gcg/testcases.py`) in
`<cache_dir>/gcg/<model>.jsonl` (or `store`), written as each one is found and reused on a
re-run with the same model, settings and behaviors.

    python -m harness attack=gcg model=tiny limit=2 attack.steps=5 attack.search_width=32 attack.topk=32
    python -m harness attack=gcg model=smollm2-aligned +model@attack.optimize_on=smollm2   # transfer
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from attacks.gcg.optimizer import GCG, REFERENCE_INIT, GCGSettings, Speed
from attacks.gcg.slot import SuffixSlot
from attacks.gcg.testcases import Snapshot, TestCase, TestCaseStore
from attacks.gcg.tokens import decode
from harness.attack import Attack
from harness.errors import HarnessError
from harness.judge.base import Judge
from harness.model.base import Model
from harness.settings import Ref, Settings
from harness.types import Behavior, Cost, Request, Sampling, content_hash

log = logging.getLogger(__name__)

class GCGAttackSettings(Settings):
    """The optimizer's settings (`GCGSettings`: the test-case key) plus what the attack does with them."""

    cosmetic = frozenset({"store", "batch_size", "groups", "bounds", "prune", "progress", "precision"})  # where, how fast
    mode: Literal["individual", "universal"] = "individual"
    steps: int = Field(500, ge=1)
    suffix_init: str = REFERENCE_INIT
    search_width: int = Field(512, ge=1)
    topk: int = Field(256, ge=1)
    seed: int = 0
    restarts: int = Field(1, ge=1)
    allow_non_ascii: bool = False
    filter_tokens: bool = True
    checkpoints: tuple[int, ...] = ()  # also evaluate the best suffix after these many steps (0: before the first)
    stop_loss: float | None = None
    check_every: int = Field(0, ge=0)
    check_tokens: int = Field(32, ge=1)
    check_judge: Annotated[Judge | None, Ref] = None
    train_behaviors: int | None = Field(None, ge=1)  # universal: optimize on the first N behaviors (null: all)
    default_target: str | None = None
    optimize_on: Annotated[Model | None, Ref] = None  # transfer: optimize on this card, evaluate on the run's model
    suffixes: Path | None = None  # evaluate the suffixes of a saved test-case file instead of optimizing
    store: Path | None = None
    batch_size: int | None = Field(None, ge=1)
    groups: int | None = Field(None, ge=1)
    bounds: tuple[int, ...] = (1, 2, 4, 8)
    prune: bool = True
    precision: Literal["auto", "float32", "bfloat16"] = "auto"  # candidate scoring; the winner re-scored in float32
    progress: bool = True
    adaptive: bool = False  # add the defense's evasion cost to the loss (adaptive GCG)
    penalty_weight: float = Field(1.0, ge=0.0)

    @field_validator("checkpoints")
    @classmethod
    def sorted_once(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def within_steps(self) -> GCGAttackSettings:
        bad = [c for c in self.checkpoints if not 0 <= c <= self.steps]
        if bad:
            raise ValueError(f"checkpoints {list(bad)} outside 0..steps={self.steps}; give step counts the run reaches")
        return self

    @field_validator("suffixes", "store")
    @classmethod
    def expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value else None


class GCGAttack(Attack):
    name = "gcg"
    Settings = GCGAttackSettings

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        self.gcg = GCGSettings(**{k: getattr(self.settings, k) for k in GCGSettings.model_fields})
        self.speed = Speed(batch_size=self.batch_size, groups=self.groups, bounds=self.bounds, prune=self.prune,
                           precision=self.settings.precision)

    # --- where test cases live -------------------------------------------------------------
    def store_for(self, source: Model) -> TestCaseStore:
        return TestCaseStore(self.store or source.cache_dir / "gcg" / f"{source.name}-{content_hash(source.id)}.jsonl")

    def key(self, source: Model, behaviors: Sequence[Behavior]) -> str:
        """Everything that decides which suffix is found: model, mode, settings, behaviors and targets, judge."""
        judge = (self.check_judge.id if self.check_judge else "keyword-gcg") if self.gcg.check_every else None
        key = {"model": source.id, "mode": self.mode, "settings": self.gcg.model_dump(mode="json"),
               "behaviors": [[b.id, b.query(), self.target(b)] for b in behaviors], "judge": judge}
        if self.settings.adaptive:  # only then: keys of non-adaptive test cases stay as they were
            evasion = self.defense.evasion_identity() if self.defense else {}
            key["adaptive"] = {"defense": self.defense.describe() if self.defense else None, "weight": self.penalty_weight,
                               **({"evasion": evasion} if evasion else {})}
        return content_hash(key)

    def penalty(self):
        """The defense's evasion cost when optimizing adaptively; None otherwise."""
        if not self.settings.adaptive:
            return None
        cost = self.defense.evasion_cost() if self.defense is not None else None
        if cost is None:
            name = self.defense.name if self.defense is not None else "none"
            raise HarnessError(f"attack.adaptive=true: defense={name} gives no evasion cost to optimize against "
                               "(adaptive GCG supports perplexity_filter and safety_signal)")
        return cost

    def adaptive(self) -> bool:
        """Optimized against the defended pipeline: with the defense's evasion cost, or on the (hardened) model
        itself when the defense does not filter at inference time. Transferred suffixes never are."""
        from harness.defense import Defense

        if self.optimize_on is not None or self.suffixes is not None:
            return False
        return self.settings.adaptive or self.defense is None or type(self.defense).wrap is Defense.wrap

    def target(self, behavior: Behavior) -> str:
        return behavior.target or (self.default_target or "")

    # --- the attack --------------------------------------------------------------------------
    def requests(self, behaviors: Sequence[Behavior], model: Model, sampling: Sampling) -> list[Request]:
        cases = self.from_file(behaviors) if self.suffixes else self.optimize(behaviors, self.optimize_on or model)
        source = self.optimize_on.name if self.optimize_on is not None else model.name
        out = []
        for b in behaviors:
            case = cases.get(b.id)
            if case is None:
                continue
            params = {"mode": case.mode, "steps": case.settings.get("steps"),
                      "optimized_on": case.model.split("@")[0] if self.suffixes else source}
            n = len(case.behaviors)  # a universal suffix's cost is shared by the behaviors it was optimized on
            for steps, suffix in self.evaluated(case):
                done = min(steps, case.steps)
                cost = Cost(forward=done * self.gcg.search_width * n, backward=done * n,
                            seconds=round(case.seconds * done / max(case.steps, 1) / n, 3)) if not self.suffixes else None
                out.append(self.ask(b, sampling, messages=(SuffixSlot.message_for(b, suffix),),
                                    params={**params, "steps": steps}, cost=cost))
        return out

    def evaluated(self, case: TestCase) -> list[tuple[int | None, str]]:
        """(steps, suffix) to ask with: the found suffix; with checkpoints, the best one at each checkpoint instead
        (past an early stop, the suffix it stopped with). A transferred file's suffixes are asked as they are."""
        if not self.checkpoints or self.suffixes:
            return [(case.settings.get("steps"), case.suffix)]
        at = {s.step: s.suffix for s in case.snapshots}
        return [(c, at.get(c, case.suffix if c >= case.steps else None)) for c in self.checkpoints
                if c in at or c >= case.steps]

    def optimized_on(self, behaviors: Sequence[Behavior]) -> list[Behavior]:
        """A universal suffix is optimized on the first `train_behaviors` and evaluated on all: those are
        marked (an individual suffix is optimized on its own behavior by design)."""
        if self.mode != "universal" or self.suffixes:
            return []
        return list(behaviors[: self.train_behaviors] if self.train_behaviors else behaviors)

    def optimize(self, behaviors: Sequence[Behavior], source: Model) -> dict[str, TestCase]:
        store = self.store_for(source)
        have = store.load()
        gcg = GCG(source, self.gcg, self.speed, judge=self.check_judge, progress=self.progress,
                  penalty=self.penalty(), penalty_weight=self.penalty_weight)
        if self.mode == "universal":
            train = self.optimized_on(behaviors)
            case = self.case(gcg, store, have, source, train, "universal")
            return {b.id: case for b in behaviors}
        return {b.id: self.case(gcg, store, have, source, [b], b.id) for b in behaviors}

    def case(self, gcg: GCG, store: TestCaseStore, have: dict[str, TestCase], source: Model,
             behaviors: list[Behavior], label: str) -> TestCase:
        key = self.key(source, behaviors)
        if key in have:
            return have[key]
        slots = [SuffixSlot.build(source, b, self.target(b)) for b in behaviors]
        found = gcg.optimize(behaviors, slots, label)
        exact = all(source.prompt_ids((s.message(found.suffix),)) == s.prompt_ids(found.suffix_ids) for s in slots)
        if not exact:
            log.warning("gcg %s: the chat template changes the suffix's tokens when rendered; "
                        "the evaluated prompt differs from the optimized one", label)
        case = TestCase(key=key, mode=self.mode, model=source.id, behaviors=tuple(b.id for b in behaviors),
                        suffix=found.suffix, suffix_ids=tuple(found.suffix_ids), loss=found.loss,
                        initial_loss=found.initial_loss, losses=tuple(found.losses), steps=found.steps,
                        restart=found.restart, stopped=found.stopped, success=found.success, exact=exact,
                        seconds=found.seconds, settings=self.gcg.model_dump(mode="json"),
                        snapshots=tuple(Snapshot(step=step, suffix=decode(source.tokenizer, ids), suffix_ids=tuple(ids),
                                                 loss=loss) for step, ids, loss in found.snapshots))
        store.append(case)
        log.info("gcg %s: loss %.3f -> %.3f in %d steps (%.0f s, %s)%s; suffix %r", label, found.initial_loss, found.loss,
                 found.steps, found.seconds, found.stopped, " judged harmful" if found.success else "", found.suffix)
        return case

    def from_file(self, behaviors: Sequence[Behavior]) -> dict[str, TestCase]:
        """Test cases of a saved file for these behaviors: by behavior id, else its universal suffix."""
        cases = TestCaseStore(self.suffixes).read()
        individual = {c.behaviors[0]: c for c in sorted(cases, key=lambda c: -c.loss) if c.mode == "individual"}
        universal = min((c for c in cases if c.mode == "universal"), key=lambda c: c.loss, default=None)
        out = {b.id: individual.get(b.id, universal) for b in behaviors}
        missing = [b for b, c in out.items() if c is None]
        if missing:
            log.warning("gcg: %s has no suffix for %d of %d behaviors (e.g. %s); they are left out",
                        self.suffixes, len(missing), len(behaviors), missing[0])
        return {b: c for b, c in out.items() if c is not None}
