"""The environment's raw strings -> values: each parser takes (variable name, raw value); one-line errors."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable and a valid example."""


def text(name: str, raw: str) -> str:
    return raw.strip()


def choice(options: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise SettingsError(f"{name}={raw!r} is invalid: use one of {', '.join(options)}")
        return value

    return parse


def number(kind: type, minimum: float, example: str) -> Callable[[str, str], Any]:
    def parse(name: str, raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a number, e.g. {name}={example}") from None
        if value < minimum:
            raise SettingsError(f"{name}={raw!r} must be >= {minimum}, e.g. {name}={example}")
        return value

    return parse


def fraction(name: str, raw: str) -> float:
    value = number(float, 0, "0.5")(name, raw)
    if not 0 < value <= 1:
        raise SettingsError(f"{name}={raw!r} is not a fraction in (0, 1], e.g. {name}=0.5")
    return value


def tcp_port(name: str, raw: str) -> int:
    value = number(int, 0, "5000")(name, raw)
    if value > 65535:
        raise SettingsError(f"{name}={raw!r} is not a TCP port, e.g. {name}=5000")
    return value


def boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean, e.g. {name}=true")


def keys(name: str, raw: str) -> tuple[str, ...]:
    found = tuple(k.strip() for k in raw.split(",") if k.strip())
    if any(len(k) < 16 for k in found):
        raise SettingsError(
            f"{name}: each key needs at least 16 characters, e.g. {name}=$(openssl rand -hex 24)"
        )
    return found


def names(name: str, raw: str) -> tuple[str, ...]:
    found = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if any(not n.isprintable() or " " in n or "/" in n for n in found):
        raise SettingsError(
            f"{name}: names without spaces or slashes, e.g. {name}=whisper-1,gpt-4o-transcribe"
        )
    return found


def directory(name: str, raw: str) -> str:
    if not os.path.isdir(raw):
        raise SettingsError(f"{name}={raw!r} is not an existing directory, e.g. {name}=/tmp")
    return raw
