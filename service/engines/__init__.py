"""Inference engines behind one small interface (see base.Engine), registered by name.

Every engine is built as `Engine(settings, device_index)` and loaded later, on the inference thread. An
engine's module is imported only when chosen, so a faster-whisper worker never imports torch.
"""

from __future__ import annotations

import importlib

from ..settings import Settings
from ..settings.choices import ENGINES
from .base import DecodeOptions, Engine, ModelUnavailable, Thresholds, WindowResult

__all__ = [
    "ENGINES",
    "DecodeOptions",
    "Engine",
    "ModelUnavailable",
    "Thresholds",
    "WindowResult",
    "create_engine",
    "engine_class",
]


def engine_class(name: str) -> type[Engine]:
    """The class of the engine named `name` (a WHISPER_ENGINE value; its module: settings.ENGINES), imported
    now: its facts (name, untimed_beam_size, gpu_batch_size, cpu_batch_size) are class attributes."""
    return importlib.import_module(f"{__name__}.{ENGINES[name]}").ENGINE


def create_engine(settings: Settings, device_index: int = 0) -> Engine:
    """The engine named by WHISPER_ENGINE, not yet loaded (load() runs on the inference thread)."""
    return engine_class(settings.whisper_engine)(settings, device_index)
