"""The engine boundary: what the scheduler asks of a Whisper implementation.

An engine loads one model onto one device and decodes batches of audio windows (each at most 30 s of 16 kHz
mono float32). It knows nothing of HTTP, queues or requests; the scheduler above it does the batching,
temperature fallback and offsets. Both `openai-whisper` and `faster-whisper` implement this class.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16000  # Hz: every engine takes 16 kHz mono float32
WINDOW_SECONDS = 30  # Whisper's receptive field
WINDOW_SAMPLES = SAMPLE_RATE * WINDOW_SECONDS  # 480000 samples in a 30-second window


@dataclass(frozen=True)
class DecodeOptions:
    """What one model call needs; windows whose options are equal can share a batch."""

    task: str = "transcribe"  # or "translate" (to English)
    language: str | None = None  # ISO code; None only for language detection
    temperature: float = 0.0  # one step of the fallback ladder
    prompt: str | None = None  # previous-text conditioning ("prompt" in OpenAI's API)
    beam_size: int | None = None  # beam search at temperature 0
    best_of: int | None = None  # independent samples at temperature > 0
    word_timestamps: bool = False  # align words with the cross-attention (DTW)
    force_tokens: int = 0  # benchmark only: exactly N tokens per window, whatever the weights say


@dataclass(frozen=True)
class Thresholds:
    """openai-whisper's rules for rejecting a decode and retrying at a higher temperature."""

    compression_ratio: float | None = 2.4  # gzip ratio above this: repetitive, retry
    logprob: float | None = -1.0  # average log-probability below this: unsure, retry
    no_speech: float | None = 0.6  # no-speech probability above this (and low logprob): silence
    hallucination_silence: float | None = None  # sequential mode only: skip silences longer than this


@dataclass
class Word:
    word: str
    start: float  # seconds from the start of the window (engine) or the file (scheduler)
    end: float
    probability: float


@dataclass
class Segment:
    start: float  # seconds, relative to the window in engine results
    end: float
    text: str
    tokens: list[int]
    words: list[Word] | None = None


@dataclass
class WindowResult:
    """One window's decode at one temperature."""

    segments: list[Segment]
    text: str
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    tokens: list[int] = field(default_factory=list)

    def needs_fallback(self, thresholds: Thresholds) -> bool:
        """openai-whisper's rule: too repetitive or too unsure, unless it is silence."""
        too_repetitive = (
            thresholds.compression_ratio is not None and self.compression_ratio > thresholds.compression_ratio
        )
        too_unsure = thresholds.logprob is not None and self.avg_logprob < thresholds.logprob
        silent = (
            thresholds.no_speech is not None
            and self.no_speech_prob > thresholds.no_speech
            and thresholds.logprob is not None
            and self.avg_logprob < thresholds.logprob
        )
        return (too_repetitive or too_unsure) and not silent

    def is_silence(self, thresholds: Thresholds) -> bool:
        if thresholds.no_speech is None or self.no_speech_prob <= thresholds.no_speech:
            return False
        return thresholds.logprob is None or self.avg_logprob < thresholds.logprob


@dataclass
class Transcript:
    """A whole file decoded sequentially (openai-whisper's long-form algorithm); times are absolute."""

    language: str
    segments: list[tuple[Segment, WindowResult]]


class TimestampTokenizer(Protocol):
    """What split_segments needs of a tokenizer; openai-whisper's and faster-whisper's both have it."""

    eot: int  # end of text; every token id below it is text
    timestamp_begin: int  # <|0.00|>; every token id from here on is a timestamp (0.02 s steps)

    def decode(self, tokens: list[int]) -> str: ...


class Engine(abc.ABC):
    """One model on one device. Only the scheduler's inference thread calls these methods."""

    name: str  # "openai-whisper" | "faster-whisper"
    model_name: str  # what /v1/models reports, e.g. "turbo" or the checkpoint's file stem
    device: str  # "cpu" | "cuda" | "cuda:1"
    precision: str  # "float16", "float32", "int8", ...
    is_multilingual: bool = True
    batch_size: int = 4  # a good default batch for this device

    @abc.abstractmethod
    def load(self) -> None:
        """Load the weights onto the device. Slow; called once, from the inference thread."""

    @abc.abstractmethod
    def detect_language(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        """For each window, the probability of every language code."""

    @abc.abstractmethod
    def decode(self, windows: list[np.ndarray], options: DecodeOptions) -> list[WindowResult]:
        """Decode windows (each <= 30 s) as one batch; segment times relative to each window."""

    @abc.abstractmethod
    def transcribe(self, audio: np.ndarray, options: DecodeOptions, temperatures: tuple[float, ...],
                   thresholds: Thresholds, condition_on_previous_text: bool) -> Transcript:  # fmt: skip
        """Sequential long-form decoding of a whole file, each window conditioned on the last."""

    def warmup(self) -> None:
        """One short inference so that the first request does not pay for lazy initialisation."""
        silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
        self.detect_language([silence])
        self.decode([silence], DecodeOptions(language="en", force_tokens=4))

    def memory(self) -> dict[str, tuple[int, int]]:
        """Accelerator memory per device: (allocated, reserved) bytes; empty on CPU."""
        return {}

    @staticmethod
    def is_out_of_memory(error: BaseException) -> bool:
        """Whether an exception from decode() means the batch did not fit on the device."""
        return False

    def release_cache(self) -> None:
        """Give cached accelerator memory back after an out-of-memory error (nothing to do on CPU)."""
        return None


def split_segments(tokens: list[int], tokenizer: TimestampTokenizer, window_seconds: float) -> list[Segment]:
    """Cut one window's tokens into segments at timestamp pairs, like openai-whisper's transcribe().

    Shared by both engines so that the same tokens give the same segments whichever engine decoded them.
    Unlike transcribe(), a window is never re-decoded from its last timestamp: text after the last closed
    pair becomes a final segment that ends with the window. Times are clamped into [0, window] and made
    monotonic, so segments never overlap even when the weights emit odd timestamps.
    """
    begin = tokenizer.timestamp_begin
    text_tokens = [t for t in tokens if t < tokenizer.eot]
    if not text_tokens:
        return []
    pieces: list[tuple[float | None, float | None, list[int]]] = []
    start: float | None = None
    current: list[int] = []
    for token in tokens:
        if token >= begin:
            stamp = (token - begin) * 0.02
            if current:  # a closing timestamp
                pieces.append((start, stamp, current))
                start, current = None, []
            else:  # an opening timestamp (the second of a pair)
                start = stamp
        elif token < tokenizer.eot:
            current.append(token)
    if current:
        pieces.append((start, None, current))
    segments: list[Segment] = []
    previous_end = 0.0
    for piece_start, piece_end, piece_tokens in pieces:
        seg_start = min(max(piece_start if piece_start is not None else previous_end, previous_end),
                        window_seconds)  # fmt: skip
        seg_end = window_seconds if piece_end is None else min(piece_end, window_seconds)
        seg_end = max(seg_end, seg_start)
        text = tokenizer.decode(piece_tokens)
        segments.append(Segment(round(seg_start, 3), round(seg_end, 3), text, piece_tokens))
        previous_end = seg_end
    return segments
