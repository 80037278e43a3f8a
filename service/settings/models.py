"""The model registry's knobs (service/batching/registry.py): further models beside WHISPER_MODEL, chosen by
a request's `model`, loaded on first use and unloaded when idle.

    MODELS=base=build/base-ct2:faster-whisper,base-ow=build/base.pt:openai-whisper,turbo=turbo

Each entry is `name=source[:engine]`: the name a request sends, an official model name or a checkpoint path
or CTranslate2 directory (as WHISPER_MODEL), and the engine (WHISPER_ENGINE's when left out). The default
model (WHISPER_MODEL on WHISPER_ENGINE) is always loaded and keeps its name and aliases.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import model_validator

from .choices import ENGINES
from .knobs import Knobs, knob
from .parse import SettingsError, names, number

ENGINE_NAMES = tuple(ENGINES)
EXAMPLE = "MODELS=base=build/base-ct2:faster-whisper,small=small"


@dataclass(frozen=True)
class ModelEntry:
    """One MODELS entry; engine None: WHISPER_ENGINE's."""

    name: str
    source: str
    engine: str | None = None

    def __str__(self) -> str:
        return f"{self.name}={self.source}" + (f":{self.engine}" if self.engine else "")


def model_entries(name: str, raw: str) -> tuple[ModelEntry, ...]:
    """`name=source[:engine],...` -> entries; one-line errors with an example."""
    entries: dict[str, ModelEntry] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        model, sep, source = (s.strip() for s in item.partition("="))
        engine = None
        if ":" in source and source.rsplit(":", 1)[1] in ENGINE_NAMES:
            source, engine = source.rsplit(":", 1)
        elif ":" in source and source.rsplit(":", 1)[1].endswith("whisper"):
            raise SettingsError(
                f"{name}: {item!r} names no engine of {', '.join(ENGINE_NAMES)}, e.g. {EXAMPLE}"
            )
        if not sep or not model or not source:
            raise SettingsError(f"{name}: {item!r} is not name=source[:engine], e.g. {EXAMPLE}")
        if not model.isprintable() or " " in model or "/" in model:
            raise SettingsError(f"{name}: the name {model!r} has a space or a slash, e.g. {EXAMPLE}")
        if model in entries:
            raise SettingsError(f"{name}: {model!r} is named twice, e.g. {EXAMPLE}")
        entries[model] = ModelEntry(model, source, engine)
    return tuple(entries.values())


class ModelsSettings(Knobs):
    models: tuple[ModelEntry, ...] = knob(
        "MODELS",
        (),
        model_entries,
        "More models a request's `model` may pick: `name=source[:engine]`, comma-separated (docs/models.md).",
    )
    model_ttl: float = knob(
        "MODEL_TTL",
        300.0,
        number(float, 0, "300"),
        "Seconds a MODELS model stays loaded without requests; 0: never unloaded.",
    )
    preload_models: tuple[str, ...] = knob(
        "PRELOAD_MODELS", (), names, "MODELS names loaded at start (comma-separated), not on first use."
    )

    @model_validator(mode="after")
    def _models_combinations(self) -> ModelsSettings:
        """MODELS' names against the default's and its aliases; PRELOAD_MODELS against MODELS."""
        known = {entry.name for entry in self.models}
        default = getattr(self, "whisper_model", "").rstrip("/").rsplit("/", 1)[-1].removesuffix(".pt")
        taken = known & {default, *getattr(self, "model_aliases", ())}
        if taken:
            raise SettingsError(
                f"MODELS names {', '.join(sorted(taken))}, already the default model's name or an alias "
                f"(WHISPER_MODEL, MODEL_ALIASES): choose another name, e.g. {EXAMPLE}"
            )
        unknown = [name for name in self.preload_models if name not in known]
        if unknown:
            raise SettingsError(
                f"PRELOAD_MODELS names {', '.join(unknown)}, not in MODELS "
                f"({', '.join(known) or 'empty'}), e.g. PRELOAD_MODELS=base with {EXAMPLE}"
            )
        return self
