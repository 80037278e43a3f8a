"""Inference engines behind one small interface (see base.Engine); `create_engine` picks one by setting."""

from __future__ import annotations

from ..settings import Settings
from .base import DecodeOptions, Engine, Segment, Thresholds, Transcript, WindowResult, Word

__all__ = ["DecodeOptions", "Engine", "Segment", "Thresholds", "Transcript", "WindowResult", "Word",
           "create_engine"]  # fmt: skip


def create_engine(settings: Settings, device_index: int = 0) -> Engine:
    """The engine named by WHISPER_ENGINE, not yet loaded (load() runs on the inference thread)."""
    if settings.whisper_engine == "faster-whisper":
        from .faster_whisper import FasterWhisperEngine

        return FasterWhisperEngine(settings, device_index=device_index)
    from .openai_whisper import OpenAIWhisperEngine

    return OpenAIWhisperEngine(
        settings.whisper_model, settings.whisper_device, settings.whisper_model_dir, device_index
    )
