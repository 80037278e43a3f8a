"""The stack config's value rules: each reads one key and fails with one line that names the key, the
problem and a value that works (`pulumi up` prints a ConfigError without a traceback)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
from pydantic import TypeAdapter, ValidationError

# booleans as the service's settings and the deploy's read them (pydantic): true/false, 1/0, yes/no, on/off
BOOLEAN = TypeAdapter(bool)


class ConfigError(pulumi.RunError):
    """A stack config value that cannot work. RunError: Pulumi prints the message, no traceback."""


def fail(key: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"config {key}: {problem}; {fix}")


def str_value(values: Mapping[str, Any], key: str, default: str) -> str:
    raw = values.get(key)
    return default if raw in (None, "") else str(raw)


def int_value(values: Mapping[str, Any], key: str, default: int | None, example: int) -> int | None:
    raw = values.get(key)
    if raw in (None, ""):
        return default
    try:
        return int(str(raw))
    except ValueError:
        raise fail(key, f"{raw!r} is not a whole number", f"e.g. {key}: {example}") from None


def float_value(values: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    raw = values.get(key)
    if raw in (None, ""):
        return default
    try:
        number = float(str(raw))
    except ValueError:
        number = float("nan")
    if not low < number <= high:
        raise fail(key, f"{raw!r} is not a number in ({low}, {high}]", f"e.g. {key}: {default}")
    return number


def bool_value(values: Mapping[str, Any], key: str, default: bool) -> bool:
    raw = values.get(key)
    if raw in (None, ""):
        return default
    try:
        return BOOLEAN.validate_python(str(raw).strip())
    except ValidationError:
        raise fail(key, f"{raw!r} is not a boolean (true or false)", f"e.g. {key}: true") from None


def list_value(values: Mapping[str, Any], key: str) -> list[str] | None:
    """A list given as YAML list (arrives as JSON) or as a comma-separated string."""
    raw = values.get(key)
    if raw is None:
        return None
    if isinstance(raw, (list, tuple)):
        return [str(item) for item in raw]
    text = str(raw).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list):
            raise fail(key, f"{raw!r} is not a list", f'e.g. {key}: ["10.0.0.0/8"]')
        return [str(item) for item in parsed]
    return [item.strip() for item in text.split(",") if item.strip()]


def bounded_int(values: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    number = int_value(values, key, default, default)
    if not low <= number <= high:
        raise fail(key, f"{number} is outside {low}..{high}", f"e.g. {key}: {default}")
    return number
