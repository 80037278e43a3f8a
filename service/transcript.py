"""The typed result of a transcription: segments and words with absolute times, language and duration.

Engines produce segments with times from the start of what they decoded; the job that owns the windows maps
them to file times (batching/job.py). Formats render a `Transcript`; nothing here knows about HTTP, queues or
models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Word:
    word: str  # with its leading space, as the tokenizer spells it
    start: float  # seconds
    end: float
    probability: float
    speaker: str | None = None  # "A", "B", ... or a known speaker's name, when diarized


@dataclass(frozen=True)
class Segment:
    start: float  # seconds: from the window's start in engine results, from the file's start in a Transcript
    end: float
    text: str
    tokens: tuple[int, ...]
    words: tuple[Word, ...] | None = None  # None: word timestamps were not asked for
    # the decode this segment came from (openai-whisper's verbose_json fields)
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    seek: int = 0  # mel frame (10 ms) where its window starts
    logprobs: tuple[tuple[str, float], ...] | None = None  # (token text, log-probability) when asked for
    speaker: str | None = None  # "A", "B", ... or a known speaker's name, when diarized (service/speakers)


@dataclass(frozen=True)
class Transcript:
    language: str  # ISO code ("en"); "" when unknown
    duration: float  # seconds of audio received
    segments: tuple[Segment, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in (s.words or ())]

    @property
    def billed_seconds(self) -> int:
        """OpenAI bills whole seconds of input audio."""
        return math.ceil(self.duration)
