"""How a knob's raw value is checked: each rule gives pydantic its constraints (ge, le, ...) and a step run
before pydantic's own (strip, split a list, check a name), and words the one-line error a bad value gets."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable and a valid example."""


@dataclass(frozen=True)
class Rule:
    """A knob's check: `example` is a valid value for the error line; `says` words a value that breaks
    `constraints` ("is not a TCP port"; else "must be >= 1"); `before(variable, raw)` runs on strings first
    and raises SettingsError with its own line."""

    example: str = ""
    says: str = ""
    constraints: Mapping[str, Any] = field(default_factory=dict)
    before: Callable[[str, str], Any] | None = None


def _strip(name: str, raw: str) -> str:
    return raw.strip()


text = Rule(before=_strip)
boolean = Rule("true")  # pydantic's booleans: 1/0, true/false, yes/no, on/off, t/f, y/n, any case
fraction = Rule("0.5", "is not a fraction in (0, 1]", {"gt": 0, "le": 1})
tcp_port = Rule("5000", "is not a TCP port", {"ge": 0, "le": 65535})


def number(kind: type, minimum: float, example: str, maximum: float | None = None) -> Rule:
    """A number of at least `minimum` (and at most `maximum`); `kind` is the field's annotation, kept so
    that a knob reads as before: number(int, 1, "32")."""
    bounds = {"ge": minimum} if maximum is None else {"ge": minimum, "le": maximum}
    return Rule(example, constraints=bounds)


def choice(options: tuple[str, ...]) -> Rule:
    """One of `options`, any case (the field's annotation is their Literal)."""

    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise SettingsError(f"{name}={raw!r} is invalid: use one of {', '.join(options)}")
        return value

    return Rule(options[0], before=parse)


def _keys(name: str, raw: str) -> tuple[SecretStr, ...]:
    found = tuple(k.strip() for k in raw.split(",") if k.strip())
    if any(len(k) < 16 for k in found):
        raise SettingsError(
            f"{name}: each key needs at least 16 characters, e.g. {name}=$(openssl rand -hex 24)"
        )
    return tuple(SecretStr(k) for k in found)


def _names(name: str, raw: str) -> tuple[str, ...]:
    found = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if any(not n.isprintable() or " " in n or "/" in n for n in found):
        raise SettingsError(
            f"{name}: names without spaces or slashes, e.g. {name}=whisper-1,gpt-4o-transcribe"
        )
    return found


def _directory(name: str, raw: str) -> str:
    if not os.path.isdir(raw):
        raise SettingsError(f"{name}={raw!r} is not an existing directory, e.g. {name}=/tmp")
    return raw


keys = Rule(before=_keys)  # comma-separated secrets of 16+ characters
names = Rule(before=_names)  # comma-separated names without spaces or slashes
directory = Rule(before=_directory)  # an existing directory


def rule_of(parse: Rule | Callable[[str, str], Any]) -> Rule:
    """A Rule, or a parser written before rules, `(variable, raw) -> value`, run on strings."""
    return parse if isinstance(parse, Rule) else Rule(before=parse)
