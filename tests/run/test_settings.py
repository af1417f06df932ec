"""Typed plugin settings: every setting is in the cache identity unless it is declared cosmetic.

The settings-key test finds every plugin (a `Configured` subclass under attacks/, defenses/,
benchmarks/, harness/judge/, harness/engine/), changes each of its settings in turn and checks
that the identity (what run hashes and cache keys see) changes, unless the setting is listed in
`cosmetic`, in which case it must not change.
"""

from __future__ import annotations

import collections.abc
import importlib
import pkgutil
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError

from attacks.direct import DirectAttack
from benchmarks.advbench import AdvBench
from benchmarks.harmbench import HarmBench
from defenses.none import NoDefense
from harness.benchmark import Benchmark
from harness.errors import HarnessError
from harness.model.base import Model
from harness.settings import Configured, Settings, identity_of, parse

PACKAGES = ("attacks", "defenses", "benchmarks", "harness.judge", "harness.engine", "harness.training")


class Card(Model):
    """A model card that never loads anything: enough for settings and identities."""

    def source(self) -> dict[str, Any]:
        return {"card": self.name}


def plugins() -> list[type[Configured]]:
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            importlib.import_module(info.name)  # heavy dependencies (vllm, openai) are imported lazily
    found, todo = [], list(Configured.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in ("attacks", "defenses", "benchmarks", "harness") and cls.Settings.model_fields:
            found.append(cls)
    return sorted(set(found), key=lambda c: f"{c.__module__}.{c.__qualname__}")


PLUGINS = plugins()


def samples(kind: type) -> list[Any]:
    """Two different values of a type a setting may hold (objects the tests can build cheaply)."""
    if isinstance(kind, type) and issubclass(kind, Model):
        return [Card("card-a"), Card("card-b")]
    if isinstance(kind, type) and issubclass(kind, Benchmark):
        return [AdvBench(), HarmBench()]
    if isinstance(kind, type) and issubclass(kind, Configured):
        options = [cls for cls in PLUGINS if issubclass(cls, kind)] or [DirectAttack, NoDefense]
        built = []
        for cls in [kind, *options]:
            for pick in (0, 1):
                try:
                    built.append(cls(**required(cls.Settings, pick)))
                except (HarnessError, TypeError):
                    continue
        return built
    if typing.get_origin(kind) is collections.abc.Callable:
        return [lambda model: None, lambda model: model]
    return {bool: [False, True], int: [1, 2], float: [0.5, 0.25], str: ["a", "b"], Path: [Path("a"), Path("b")]}.get(kind, [])


def kinds(annotation: Any) -> list[Any]:
    """The non-None types of an annotation (Annotated and unions unwrapped)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return kinds(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [k for arg in typing.get_args(annotation) for k in kinds(arg) if k is not type(None)]
    return [annotation]


# Settings whose other fields need a particular base to be changed validly.
BASE = {"FinetuneSettings": {"train": {"save_steps": [1, 2]}},
        "PrefillSettings": {"source": "answers", "answers_from": Card("card-a")},
        "SafetySignalSettings": {"harmful": AdvBench(), "benign": HarmBench()},
        "DecodingSettings": {"temperatures": [0.5]}}
# Settings whose valid values a type cannot suggest.
OTHER = {("SafetySignalSettings", "objective"): [{"lam": 0.1}], ("CustomSettings", "columns"): [{"prompt": "question"}],
         ("RefusalAblationSettings", "position"): [-1], ("RefusalAblationSettings", "positions"): [(-1,)]}


def required(cls: type[Settings], pick: int = 0) -> dict[str, Any]:
    """Values for the settings without a default (the `pick`-th sample of each)."""
    out = dict(BASE.get(cls.__name__, {}))
    for name, field in cls.model_fields.items():
        if field.is_required():
            out[name] = [v for k in kinds(field.annotation) for v in samples(k)][pick]
    return out


def serialized(settings: Settings, name: str) -> Any:
    """What the identity would see of one setting (its serialized value), cosmetic or not."""
    try:
        return settings.model_dump(mode="json", include={name}, by_alias=True)
    except ValueError:  # not serializable (an engine factory): compare the objects
        return identity_of(getattr(settings, name))


def alternatives(annotation: Any, current: Any) -> list[Any]:
    """Values to try instead of `current`, first valid one wins."""
    out: list[Any] = []
    for kind in kinds(annotation):
        origin = typing.get_origin(kind)
        if origin is Literal:
            out += [v for v in typing.get_args(kind) if v != current]
        elif origin is tuple and Ellipsis not in typing.get_args(kind):  # fixed length: change the last item
            out.append((*current[:-1], current[-1] + 1))
        elif origin is tuple:
            item = typing.get_args(kind)[0]
            extra = samples(item)
            out += [(*(current or ()), v) for v in extra] + [tuple(extra[:1]), tuple((current or ())[:1])]
        elif origin is dict or kind is dict:
            out += [{**(current or {}), "changed": "x"}, {**(current or {}), "changed": 1}]
        elif isinstance(kind, type) and issubclass(kind, BaseModel) and current is not None:
            for name, field in type(current).model_fields.items():
                for value in alternatives(field.annotation, getattr(current, name)):
                    out.append({**current.model_dump(), name: value})
        elif kind is bool:
            out.append(not current)
        elif kind in (int, float) and current is not None:
            out += [current + 1, current - 1, current / 2, current * 2] if kind is float else [current + 1, current - 1]
        elif kind is str and current is not None:
            out.append(current + "x")
        else:
            out += samples(kind)
    if current is not None and nullable(annotation):
        out.append(None)
    return out


def nullable(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        return nullable(typing.get_args(annotation)[0])
    return type(None) in typing.get_args(annotation)


def changed(cls: type[Settings], base: dict[str, Any], name: str) -> Settings | None:
    field = cls.model_fields[name]
    before = cls(**base)
    current = getattr(before, name)
    for value in OTHER.get((cls.__name__, name), []) + alternatives(field.annotation, current):
        try:
            other = cls(**{**base, name: value})
        except (ValidationError, HarnessError, TypeError, ValueError):
            continue
        if serialized(other, name) != serialized(before, name):
            return other
    return None


CASES = [(plugin, name) for plugin in PLUGINS for name in plugin.Settings.model_fields]


def test_every_plugin_takes_typed_settings():
    names = {cls.__name__ for cls in PLUGINS}
    assert {"KeywordJudge", "RubricJudge", "ClassifierJudge", "HFEngine", "OpenAIEngine", "VLLMEngine", "PrefillAttack",
            "DecodingAttack", "GCGAttack", "FinetuneAttack", "HarmfulExamples", "Backdoor", "BenignSet", "IdentityShift",
            "SafetySFT", "DeepAlignment", "ConstrainedSFT", "SafetyMix", "SafetyAnchors", "SafetySignal",
            "SystemPromptDefense", "AdvBench", "HarmBench", "GSM8K", "XSTest", "JailbreakBench", "CustomFile"} <= names


@pytest.mark.parametrize(("plugin", "name"), CASES, ids=[f"{p.__name__}.{n}" for p, n in CASES])
def test_each_setting_changes_the_identity_unless_cosmetic(plugin, name):
    cls = plugin.Settings
    base = required(cls)
    before = cls(**base)
    other = changed(cls, base, name)
    if other is None:
        pytest.fail(f"{plugin.__name__}.{name}: no valid other value found to test with; extend tests/run/test_settings.py")
    if name in cls.cosmetic:
        assert other.identity() == before.identity(), f"{name} is cosmetic but changes the identity"
    else:
        assert other.identity() != before.identity(), f"{plugin.__name__}.{name} is not in the cache identity"


def test_cosmetic_names_real_fields():
    for plugin in PLUGINS:
        assert plugin.Settings.cosmetic <= set(plugin.Settings.model_fields), plugin.__name__


@pytest.mark.parametrize("plugin", PLUGINS, ids=[p.__name__ for p in PLUGINS])
def test_every_setting_but_the_cosmetic_ones_is_always_in_the_identity(plugin):
    """Also an unset one (None, 0, empty): no field leaves the key to keep an old key valid (RECIPE_VERSION does that)."""
    cls = plugin.Settings
    settings = cls(**required(cls))
    assert set(settings.identity()) == {f.serialization_alias or f.alias or n for n, f in cls.model_fields.items()
                                       if n not in cls.cosmetic}


def test_validation_errors_are_one_line_naming_field_value_and_rule():
    from harness.judge.rubric import RubricSettings

    with pytest.raises(HarnessError) as err:
        parse(RubricSettings, "judge", {"harmful_threshold": 6})
    assert str(err.value) == "judge.harmful_threshold=6: Input should be less than or equal to 5"
    with pytest.raises(HarnessError, match=r"judge.tempreature: no such setting \(settings: .*temperature"):
        parse(RubricSettings, "judge", {"tempreature": 0.5})
    with pytest.raises(HarnessError, match="engine.api='responses': Input should be 'chat' or 'completions'"):
        from harness.engine.openai_engine import OpenAIEngine

        OpenAIEngine(Card("x"), api="responses")


def test_the_run_hash_holds_the_recipe_version_and_every_setting_but_the_cosmetic_ones(monkeypatch):
    import harness.run.loop
    from defenses.system_prompt import SystemPromptDefense
    from harness.engine.hf import HFEngine
    from harness.run.loop import run_hash
    from harness.types import RECIPE_VERSION

    card = Card("card-a")
    key = run_hash(card, NoDefense(), HFEngine(card))
    assert run_hash(card, NoDefense(), HFEngine(card, batch_size=3, progress=False)) == key  # speed and display only
    assert run_hash(Card("card-b"), NoDefense(), HFEngine(Card("card-b"))) != key
    assert run_hash(card, SystemPromptDefense(), HFEngine(card)) != key
    assert run_hash(card, SystemPromptDefense(use_card=False), HFEngine(card)) != run_hash(card, SystemPromptDefense(),
                                                                                          HFEngine(card))
    monkeypatch.setattr(harness.run.loop, "RECIPE_VERSION", RECIPE_VERSION + 1)
    assert run_hash(card, NoDefense(), HFEngine(card)) != key  # a version bump re-keys every run
