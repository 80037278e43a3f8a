"""Voice-activity detection: which parts of the audio are speech, so that silence is never decoded.

Whisper invents words where nobody speaks ("Thanks for watching", "you you you"); the cure used by
faster-whisper's batched pipeline and WhisperX is to decode only what a VAD calls speech. This module runs
the Silero VAD that ships inside the faster-whisper package (an ONNX model run by onnxruntime, on the CPU,
for either engine) and returns speech regions in samples.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE


@dataclass(frozen=True)
class VadParams:
    """Silero's knobs, named after OpenAI's `chunking_strategy` server_vad object; the server's defaults are
    the VAD_* settings."""

    threshold: float  # speech probability above which a 32 ms frame is speech
    min_silence_ms: int  # a pause at least this long ends a region ("silence_duration_ms")
    speech_pad_ms: int  # kept on each side of a region ("prefix_padding_ms")
    min_speech_ms: int = 250  # shorter regions are dropped (clicks, breaths)


@dataclass(frozen=True)
class Region:
    start: int  # samples, inclusive
    end: int  # samples, exclusive

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


_load_lock = threading.Lock()


def load() -> None:
    """Load the Silero model now (at start-up, not on the first request); ImportError if unavailable."""
    with _load_lock:
        from faster_whisper.vad import get_vad_model

        get_vad_model()


def speech_regions(audio: np.ndarray, params: VadParams) -> list[Region]:
    """Speech regions of 16 kHz mono audio, unpadded, in order; [] when nothing in it is speech."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(audio) < SAMPLE_RATE // 10:
        return []
    options = VadOptions(
        threshold=params.threshold,
        min_silence_duration_ms=params.min_silence_ms,
        min_speech_duration_ms=params.min_speech_ms,
        speech_pad_ms=0,
    )
    return [Region(int(r["start"]), int(r["end"])) for r in get_speech_timestamps(audio, options)]


def pad(regions: list[Region], pad_ms: int, length: int) -> list[Region]:
    """Regions widened by `pad_ms` on each side, within [0, length); overlapping ones are merged."""
    margin = pad_ms * SAMPLE_RATE // 1000
    out: list[Region] = []
    for r in regions:
        start, end = max(0, r.start - margin), min(length, r.end + margin)
        if out and start <= out[-1].end:
            out[-1] = Region(out[-1].start, max(out[-1].end, end))
        else:
            out.append(Region(start, end))
    return out
