"""Voice activity detection: which parts of the audio hold speech, so silence is never decoded."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VadParams:
    """How speech regions are found; `None` in JobOptions.vad means VAD is off."""

    threshold: float = 0.5  # speech probability above which a frame counts as speech
    min_silence_ms: int = 1000  # a pause at least this long ends a speech region
    speech_pad_ms: int = 400  # audio kept on each side of a speech region
