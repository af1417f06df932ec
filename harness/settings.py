"""Typed plugin settings: one frozen pydantic model per plugin, its cache identity derived from it.

A plugin (attack, defense, judge, engine, benchmark) declares `Settings`, a subclass of
`Settings` here, and takes one instance of it. Hydra configs keep passing keyword arguments:
`Configured.__init__` builds the settings from them, so `_target_: attacks.prefill.PrefillAttack`
with `lengths: [0, 5]` works as before; Python code passes a settings object, or values
(positional ones in field order).

The identity (what cache keys and run hashes see) is every field minus the ones listed in
`cosmetic` (speed, progress bars, file names: settings that cannot change a result), so a new
setting is part of the key unless someone decides, in one visible place, that it is cosmetic.
Every other field is always there, also when it is unset (None, 0, empty): no special case keeps
an old key valid. When the rule or a setting's meaning changes, `harness.types.RECIPE_VERSION`
(in every training cache key and run hash) is bumped once instead, a documented re-key.
Fields holding other plugins or models serialize to their own identity (`Ref`).

Invalid settings become one `HarnessError` line naming the option, the bad value and what is
valid: `attack.steps=0: Input should be greater than or equal to 1`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, ValidationError

from harness.errors import HarnessError


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True, allow_inf_nan=False)

    cosmetic: ClassVar[frozenset[str]] = frozenset()  # fields that cannot change a result: not in the identity

    def identity(self) -> dict[str, Any]:
        """The settings as the cache key sees them: JSON values, every field but the cosmetic ones."""
        return self.model_dump(mode="json", exclude=set(self.cosmetic), by_alias=True)


def identity_of(value: Any) -> Any:
    """A model card's id, a plugin's describe(); anything else as it is."""
    if value is None:
        return None
    describe = getattr(value, "describe", None)
    if callable(describe):
        return describe()
    return getattr(value, "id", value)


# A field holding a model card or another plugin: its identity goes into the key, not the object.
Ref = PlainSerializer(identity_of, when_used="always")
Named = PlainSerializer(lambda v: None if v is None else v.name, when_used="always")  # e.g. a benchmark by its name

S = TypeVar("S", bound=Settings)


def one_line(option: str, exc: ValidationError, cls: type[BaseModel] | None = None) -> str:
    """The first error of a ValidationError as `option.field=value: message`, naming what is valid."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        valid = ", ".join(sorted(cls.model_fields)) if cls is not None and len(err["loc"]) == 1 else ""
        return f"{option}.{loc}: no such setting" + (f" (settings: {valid})" if valid else "")
    if not loc:
        return f"{option}: {msg}"
    return f"{option}.{loc}={err.get('input')!r}: {msg}"


def parse(cls: type[S], option: str, values: Mapping[str, Any]) -> S:
    """`cls(**values)`, or a HarnessError naming the option, the field, the value and what is valid."""
    try:
        return cls(**values)
    except ValidationError as exc:
        raise HarnessError(one_line(option, exc, cls)) from None


class Configured:
    """A plugin built from one `Settings`: `Plugin(settings)` or `Plugin(**values)` (what Hydra passes)."""

    name: str
    option: ClassVar[str]  # the config group: messages say `attack.steps=...`, describe() says {"attack": name}
    Settings: ClassVar[type[Settings]] = Settings
    settings: Any

    def __init__(self, *args: Any, **values: Any) -> None:
        self.settings = self.configure(args, values)

    def configure(self, args: tuple[Any, ...], values: Mapping[str, Any]) -> Any:
        """The settings from one settings object, or from values (positional ones in field order, as Python calls pass)."""
        if len(args) == 1 and isinstance(args[0], Settings):
            if values:
                raise HarnessError(f"{self.option}: give a settings object or keyword settings, not both")
            if not isinstance(args[0], self.Settings):
                raise HarnessError(f"{self.option}: settings must be {self.Settings.__qualname__}, "
                                   f"got {type(args[0]).__name__}")
            return args[0]
        names = list(self.Settings.model_fields)
        if len(args) > len(names):
            raise HarnessError(f"{self.option}: {len(args)} positional settings given, it has {len(names)}: {names}")
        return parse(self.Settings, self.option, {**dict(zip(names, args, strict=False)), **values})

    def __getattr__(self, key: str) -> Any:
        """A setting reads as an attribute of the plugin (`self.batch_size` is `self.settings.batch_size`)."""
        settings = self.__dict__.get("settings")
        if settings is not None and key in type(settings).model_fields:
            return getattr(settings, key)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    def describe(self) -> dict[str, Any]:
        """What changes results: the plugin's name and its settings' identity (part of run hashes and cache keys)."""
        settings = self.__dict__.get("settings")  # a subclass whose __init__ does not call ours has none
        return {self.option: self.name, **(settings.identity() if isinstance(settings, Settings) else {})}


