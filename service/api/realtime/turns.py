"""The input audio buffer and server_vad turn detection over it, with the service's Silero VAD.

All positions are in 16 kHz samples since the session began; `Buffer` keeps only the audio not yet
committed. Detection looks, while nobody speaks, at the last IDLE_SCAN_SECONDS; once speech has started, at
the whole turn so far: a region that has been followed by `silence_duration_ms` of silence ends the turn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...audio import SAMPLE_RATE
from ...intake import vad
from .config import ServerVad

IDLE_SCAN_SECONDS = 2.0  # audio examined for the start of speech
VAD_STEP_SAMPLES = SAMPLE_RATE // 5  # detection runs again once this much new audio has come (200 ms)
MAX_TURN_SECONDS = 30.0  # a turn this long is committed even if speech goes on (Whisper's window)


def ms(samples: int) -> int:
    return samples * 1000 // SAMPLE_RATE


class Buffer:
    """Uncommitted audio: samples [start, end) of the session, in a growing array."""

    def __init__(self):
        self.start = 0
        self._data = np.zeros(SAMPLE_RATE, np.float32)
        self._size = 0

    @property
    def end(self) -> int:
        return self.start + self._size

    def append(self, audio: np.ndarray) -> None:
        if self._size + len(audio) > len(self._data):
            grown = np.zeros(max(2 * len(self._data), self._size + len(audio)), np.float32)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : self._size + len(audio)] = audio
        self._size += len(audio)

    def audio(self, start: int, end: int | None = None) -> np.ndarray:
        """A copy of samples [start, end) of the session (clipped to what is buffered)."""
        lo = max(0, start - self.start)
        hi = self._size if end is None else max(lo, min(self._size, end - self.start))
        return self._data[lo:hi].copy()

    def drop_until(self, position: int) -> None:
        """Forget the audio before `position` (committed, or silence nobody will ask for)."""
        cut = min(self._size, max(0, position - self.start))
        self._data[: self._size - cut] = self._data[cut : self._size]
        self._size -= cut
        self.start += cut


@dataclass
class Turn:
    start: int  # where the turn's audio begins (speech start less prefix_padding_ms)
    speech_end: int | None = None  # once silence_duration_ms of silence followed the speech


class TurnDetector:
    """server_vad: speech start and stop in a Buffer. `scan()` returns "started", "stopped" or None."""

    def __init__(self, params: ServerVad):
        self.params = params
        self.vad = vad.VadParams(params.threshold, params.silence_duration_ms, params.prefix_padding_ms)
        self.turn: Turn | None = None
        self._scanned = 0  # buffer end at the last scan

    def scan(self, buffer: Buffer) -> str | None:
        if buffer.end - self._scanned < VAD_STEP_SAMPLES:
            return None
        self._scanned = buffer.end
        if self.turn is None:
            return self._look_for_start(buffer)
        return self._look_for_stop(buffer)

    def _look_for_start(self, buffer: Buffer) -> str | None:
        scan_from = max(buffer.start, buffer.end - int(IDLE_SCAN_SECONDS * SAMPLE_RATE))
        regions = vad.speech_regions(buffer.audio(scan_from), self.vad)
        pad = self.params.prefix_padding_ms * SAMPLE_RATE // 1000
        if not regions:  # keep only what a turn starting now would take as its prefix
            buffer.drop_until(buffer.end - pad - int(IDLE_SCAN_SECONDS * SAMPLE_RATE))
            return None
        start = max(buffer.start, scan_from + regions[0].start - pad)
        buffer.drop_until(start)
        self.turn = Turn(start)
        return "started"

    def _look_for_stop(self, buffer: Buffer) -> str | None:
        turn = self.turn
        assert turn is not None
        if buffer.end - turn.start >= MAX_TURN_SECONDS * SAMPLE_RATE:
            turn.speech_end = buffer.end
            return "stopped"
        regions = vad.speech_regions(buffer.audio(turn.start), self.vad)
        silence = self.params.silence_duration_ms * SAMPLE_RATE // 1000
        speech_end = turn.start + regions[-1].end if regions else turn.start
        if buffer.end - speech_end < silence:
            return None
        pad = self.params.prefix_padding_ms * SAMPLE_RATE // 1000
        turn.speech_end = min(buffer.end, speech_end + pad)
        return "stopped"

    def end_turn(self) -> None:
        self.turn = None
