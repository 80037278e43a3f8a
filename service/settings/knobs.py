"""`knob()`: one settings field, declared with its environment variable, default, rule and description; and
`Knobs`, the pydantic-settings base every group of knobs derives from.

`Knobs()` is the declared defaults (with keyword overrides: `Settings(beam_size=5)`); `from_env()` reads the
environment through pydantic-settings. A bad value raises SettingsError with one line: the variable, what
is wrong, a valid example (pydantic's ValidationError is a report of many lines, without the example).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from pydantic import BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from .parse import Rule, SettingsError, rule_of


def knob(
    env: str | None, default: Any, parse: Rule | Callable[[str, str], Any], doc: str, shown: str | None = None
) -> Any:
    """A settings field: the environment variable `env` (None: the class's env_prefix + the field's name),
    `default` when unset or empty, checked by `parse` (a Rule from parse.py); `doc` and `shown` (the default
    as the docs print it, where it depends on the machine) describe it in docs/configuration.md."""
    rule = rule_of(parse)
    info = Field(
        default,
        validation_alias=env,
        description=doc,
        json_schema_extra={"env": env, "shown": shown, "example": rule.example},
        **rule.constraints,
    )
    if rule.before:
        info.metadata.append(BeforeValidator(_on_strings(env or "", rule.before)))
    info.metadata.append(rule)
    return info


def _on_strings(env: str, before: Callable[[str, str], Any]) -> Callable[[Any], Any]:
    return lambda value: before(env, value) if isinstance(value, str) else value


class _Environ(EnvSettingsSource):
    """The environment, or a mapping standing for it (tests, tools)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None):
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = os.environ if self._environ is None else self._environ
        return parse_env_vars(environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class Knobs(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,  # WHISPER_MODEL, not whisper_model
        env_ignore_empty=True,  # VAR= is unset
        enable_decoding=False,  # API_KEYS=a,b is a list by its rule, not JSON
        validate_by_name=True,  # Settings(cpu_threads=2) beside WHISPER_CPU_THREADS=2
        validate_default=False,
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise SettingsError(one_line(type(self), error.errors()[0])) from None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **others):  # noqa: ANN001
        return (init_settings,)  # Knobs() is the declared defaults; from_env() adds the environment

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The knobs from the environment (or `environ`); SettingsError on the first bad value."""
        return cls(**_Environ(cls, environ)())

    def replace(self, **changes: Any) -> Self:
        return type(self)(**{**dict(self), **changes})


PHRASES = {
    "int_parsing": "is not a number",
    "float_parsing": "is not a number",
    "int_from_float": "is not a whole number",
    "bool_parsing": "is not a boolean",
    "literal_error": "is invalid",
    "string_too_short": "is empty",
}
BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def one_line(cls: type[Knobs], error: Mapping[str, Any]) -> str:
    """The first error of a ValidationError as one line: a SettingsError's own, or the variable, its value,
    what is wrong with it, and the knob's example."""
    raised = error.get("ctx", {}).get("error")
    if isinstance(raised, SettingsError):
        return str(raised)
    field = _field(cls, str(error["loc"][0])) if error["loc"] else None
    if field is None:
        return str(raised or error["msg"])
    env, rule = env_of(cls, str(error["loc"][0]), field), _rule(field)
    if error["type"] in BOUNDS:
        says = rule.says or f"must be {BOUNDS[error['type']]} {_bound(error['ctx'])}"
    else:
        says = PHRASES.get(error["type"], error["msg"])
    example = f", e.g. {env}={rule.example}" if rule.example else ""
    return f"{env}={error['input']!r} {says}{example}"


def _bound(ctx: Mapping[str, Any]) -> Any:
    return next(iter(ctx.values()))


def _field(cls: type[Knobs], key: str) -> FieldInfo | None:
    return cls.model_fields.get(key) or next(
        (f for f in cls.model_fields.values() if f.validation_alias == key), None
    )


def _rule(field: FieldInfo) -> Rule:
    return next((m for m in field.metadata if isinstance(m, Rule)), Rule())


def env_of(cls: type[Knobs], name: str, field: FieldInfo) -> str:
    """The variable a field is read from: its own, or the class's env_prefix + its name (DEPLOY_HOST)."""
    if isinstance(field.validation_alias, str):
        return field.validation_alias
    return cls.model_config.get("env_prefix", "") + name.upper()


@dataclass(frozen=True)
class Knob:
    """One knob as docs/configuration.md prints it."""

    name: str
    env: str
    default: Any
    doc: str
    shown: str | None


def page_order(cls: type[Knobs]) -> tuple[Knob, ...]:
    """The class's own knobs, then each mixin's (`class Settings(LiveSettings, ...)`), as declared."""
    own = [n for n in cls.__dict__.get("__annotations__", {}) if n in cls.model_fields]
    mixed = [n for base in cls.__bases__ for n in getattr(base, "model_fields", {}) if n not in own]
    return tuple(_knob(cls, n, cls.model_fields[n]) for n in dict.fromkeys([*own, *mixed]))


def _knob(cls: type[Knobs], name: str, field: FieldInfo) -> Knob:
    extra = field.json_schema_extra
    assert isinstance(extra, dict), f"{name} is not declared with knob()"
    return Knob(name, env_of(cls, name, field), field.default, field.description or "", extra["shown"])  # type: ignore[arg-type]
