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
]


def create_engine(settings: Settings, device_index: int = 0) -> Engine:
    """The engine named by WHISPER_ENGINE (its module: settings.ENGINES), not yet loaded (load() runs on the
    inference thread)."""
    module = importlib.import_module(f"{__name__}.{ENGINES[settings.whisper_engine]}")
    return module.ENGINE(settings, device_index)
