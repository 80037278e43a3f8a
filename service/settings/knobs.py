"""`knob()`: one Settings field, declared with its environment variable, default, parser and description."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


def knob(env: str, default: Any, parse: Callable[[str, str], Any], doc: str, shown: str | None = None) -> Any:
    """A Settings field: read from `env` by `parse`, `default` when unset; `doc` and `shown` (the default as
    the docs print it, where it depends on the machine) describe it in docs/configuration.md."""
    return dataclasses.field(
        default=default, metadata={"env": env, "parse": parse, "doc": doc, "shown": shown}
    )
