"""Inference engines behind one small interface (see base.Engine), registered by name.

Every engine is built as `Engine(settings, device_index)` and loaded later, on the inference thread. An
engine's module is imported only when chosen, so a faster-whisper worker never imports torch.
"""

from __future__ import annotations

import importlib

from ..settings import Settings
from .base import DecodeOptions, Engine, ModelUnavailable, Thresholds, WindowResult

__all__ = ["ENGINES", "DecodeOptions", "Engine", "ModelUnavailable", "Thresholds", "WindowResult",
           "create_engine"]  # fmt: skip

# WHISPER_ENGINE value -> "module:class"
ENGINES = {
    "openai-whisper": "service.engines.openai_whisper:OpenAIWhisperEngine",
    "faster-whisper": "service.engines.faster_whisper:FasterWhisperEngine",
}


def create_engine(settings: Settings, device_index: int = 0) -> Engine:
    """The engine named by WHISPER_ENGINE, not yet loaded (load() runs on the inference thread)."""
    module, _, cls = ENGINES[settings.whisper_engine].partition(":")
    return getattr(importlib.import_module(module), cls)(settings, device_index)
