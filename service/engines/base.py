"""The engine boundary: what the scheduler asks of a Whisper implementation, and what both engines share.

An engine loads one model onto one device and decodes batches of audio windows (each at most 30 s of 16 kHz
mono float32). It knows nothing of HTTP, queues or requests; the scheduler above it does the batching,
temperature fallback, re-decoding and offsets. Every engine is built the same way, `Engine(settings,
device_index)`, and registered by name in `service.engines`.
"""

from __future__ import annotations

import abc
import zlib
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from ..audio import SAMPLE_RATE, TIME_PRECISION, TIMESTAMP_TOKENS
from ..settings import Settings
from ..transcript import Segment, Word

Transcribed = tuple[str, list[Segment]]  # sequential mode's result: language, segments with absolute times


class ModelUnavailable(RuntimeError):
    """The model cannot be loaded for a reason the operator fixes (no network, wrong path); one line."""


@dataclass(frozen=True)
class DecodeOptions:
    """What one model call needs; windows whose options are equal can share a batch."""

    task: str = "transcribe"  # or "translate" (to English)
    language: str | None = None  # ISO code; None only for language detection
    temperature: float = 0.0  # one step of the fallback ladder
    prompt: str | None = None  # previous-text conditioning ("prompt" in OpenAI's API)
    hotwords: str | None = None  # faster-whisper's hotwords: text before the prompt, in every window
    beam_size: int | None = None  # beam search at temperature 0
    best_of: int | None = None  # independent samples at temperature > 0
    word_timestamps: bool = False  # align words with the cross-attention (DTW)
    logprobs: bool = False  # record each text token's log-probability on its segment
    timestamps: bool = True  # False: <|notimestamps|>, one segment per window (the batched pipeline's way)


@dataclass(frozen=True)
class Thresholds:
    """openai-whisper's rules for rejecting a decode and retrying at a higher temperature."""

    compression_ratio: float | None = 2.4  # gzip ratio above this: repetitive, retry
    logprob: float | None = -1.0  # average log-probability below this: unsure, retry
    no_speech: float | None = 0.6  # no-speech probability above this (and low logprob): silence
    hallucination_silence: float | None = None  # sequential mode only: skip silences longer than this


@dataclass(frozen=True)
class WindowResult:
    """One window's decode at one temperature; segment times are relative to the window's start."""

    segments: tuple[Segment, ...]
    text: str
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    consumed: float  # seconds of the window this decode covers; the rest is decoded again if it has speech
    tokens: tuple[int, ...] = ()  # every sampled token, timestamps included
    # the tokens end with one closing timestamp: the model's own "no more speech here", on which transcribe()
    # skips the rest of its window
    ended: bool = False
    looped: bool = False  # stopped because its text repeated itself (looping.py)

    def needs_fallback(self, thresholds: Thresholds) -> bool:
        """openai-whisper's rule: too repetitive or too unsure, unless it is silence."""
        too_repetitive = (
            thresholds.compression_ratio is not None and self.compression_ratio > thresholds.compression_ratio
        )
        too_unsure = thresholds.logprob is not None and self.avg_logprob < thresholds.logprob
        return (too_repetitive or too_unsure) and not self.is_silence(thresholds)

    def is_silence(self, thresholds: Thresholds) -> bool:
        """openai-whisper's no-speech rule: likely no speech, and the text is not confident either."""
        if thresholds.no_speech is None or self.no_speech_prob <= thresholds.no_speech:
            return False
        return thresholds.logprob is None or self.avg_logprob < thresholds.logprob


class TimestampTokenizer(Protocol):
    """What split_segments needs of a tokenizer; openai-whisper's and faster-whisper's both have it."""

    eot: int  # end of text; every token id below it is text
    timestamp_begin: int  # <|0.00|>; every token id from here on is a timestamp (0.02 s steps)

    def decode(self, tokens: list[int]) -> str: ...


class Engine(abc.ABC):
    """One model on one device. Only the scheduler's inference thread calls load/decode/transcribe."""

    name: str  # "openai-whisper" | "faster-whisper"
    # when every temperature fails: the most likely decode (faster-whisper's transcribe()), else the last one
    best_after_ladder = False  # (openai-whisper's transcribe(): its T=1.0 sample); work.after_ladder()

    def __init__(self, settings: Settings, device_index: int = 0):
        self.settings = settings
        self.source = settings.whisper_model  # an official name or a path
        self.device_index = device_index
        self.model_name = model_name(self.source)  # what /v1/models reports
        self.device = "cpu"  # "cpu" | "cuda:N", set by the subclass
        self.precision = "float32"  # "float16", "float32", "int8", ...
        self.is_multilingual = True  # known after load()

    @abc.abstractmethod
    def load(self) -> None:
        """Load the weights onto the device. Slow; called once, from the inference thread."""

    @abc.abstractmethod
    def detect_language(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        """For each window, the probability of every language code ({"en": 1.0} on English-only models)."""

    @abc.abstractmethod
    def decode(self, windows: list[np.ndarray], options: DecodeOptions) -> list[WindowResult]:
        """Decode windows (each <= 30 s) as one batch; segment times relative to each window."""

    @abc.abstractmethod
    def transcribe(
        self,
        audio: np.ndarray,
        options: DecodeOptions,
        temperatures: tuple[float, ...],
        thresholds: Thresholds,
        condition_on_previous_text: bool,
    ) -> Transcribed:
        """Sequential decoding of a whole file, each window conditioned on the last: language, segments."""

    def warmup(self) -> None:
        """One short inference so that the first request does not pay for lazy initialisation."""
        speechless = np.zeros(SAMPLE_RATE, dtype=np.float32)
        if self.is_multilingual:
            self.detect_language([speechless])
        self.decode([speechless], DecodeOptions(language="en"))

    def memory(self) -> dict[str, tuple[int, int]]:
        """Accelerator memory per device: (allocated, reserved) bytes; empty on CPU."""
        return {}

    @staticmethod
    def is_out_of_memory(error: BaseException) -> bool:
        """Whether an exception from decode() means the batch did not fit on the device."""
        return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()

    def release_cache(self) -> None:
        """Give cached accelerator memory back after an out-of-memory error (nothing to do on CPU)."""
        return None


def model_name(source: str) -> str:
    """'turbo' -> 'turbo'; '/models/tiny.en.pt' -> 'tiny.en'; '/models/tiny.en-ct2/' -> 'tiny.en-ct2'."""
    name = source.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
    return name[:-3] if name.endswith(".pt") else name


def download_failed(source: str, error: BaseException) -> ModelUnavailable:
    """One line that says why a named model is missing and what to do instead."""
    return ModelUnavailable(
        f"cannot download the model {source!r} ({type(error).__name__}: {error}); on a machine without "
        "network set WHISPER_MODEL to a local checkpoint (.pt or a CTranslate2 directory; `make convert` "
        "converts between them), or run `make run` without WHISPER_MODEL for the embedded tiny.en"
    )


def split_segments(
    tokens: list[int], tokenizer: TimestampTokenizer, window_seconds: float
) -> tuple[list[Segment], float, bool]:
    """Cut one window's tokens into segments at timestamp pairs, like openai-whisper's transcribe(); how
    much of the window they cover; and whether they end with a single timestamp (`WindowResult.ended`).

    Shared by both engines so that the same tokens give the same segments whichever engine decoded them.
    As in transcribe(), text after the last closing timestamp is an unfinished segment: it is dropped and
    the window counts as covered up to that timestamp only, so the caller decodes the rest again (nothing
    is lost). Without any closing timestamp the text becomes one segment that ends with the window. Times
    are clamped into [0, window] and made monotonic, so segments never overlap.
    """
    spans = _timed_spans(tokens, tokenizer)
    if not spans:
        return [], window_seconds, False
    text = [t for t in tokens if t < tokenizer.eot or t >= tokenizer.timestamp_begin]
    ended = len(text) >= 2 and text[-1] >= tokenizer.timestamp_begin > text[-2]
    closed = [p for p in spans if p[1] is not None]
    consumed = window_seconds
    if closed and spans[-1][1] is None:  # unfinished text after the last pair: decode it again
        spans, consumed = closed, min(max(p[1] for p in closed), window_seconds)
    elif closed and spans[-1][1] is not None:
        consumed = min(spans[-1][1], window_seconds)
    segments: list[Segment] = []
    previous_end = 0.0
    for span_start, span_end, span_tokens in spans:
        start = previous_end if span_start is None else span_start
        start = min(max(start, previous_end), window_seconds)
        end = window_seconds if span_end is None else min(span_end, window_seconds)
        end = max(end, start)
        segments.append(
            Segment(round(start, 3), round(end, 3), tokenizer.decode(span_tokens), tuple(span_tokens))
        )
        previous_end = end
    return segments, consumed, ended


def _timed_spans(tokens: list[int], tokenizer: TimestampTokenizer):
    """(start or None, end or None, text tokens) between timestamp tokens: each span of text a segment
    may become (spans without text left out)."""
    begin = tokenizer.timestamp_begin
    spans: list[tuple[float | None, float | None, list[int]]] = []
    start: float | None = None
    current: list[int] = []
    for token in tokens:
        if token >= begin:
            stamp = (token - begin) * TIME_PRECISION
            if current:  # a closing timestamp
                spans.append((start, stamp, current))
                start, current = None, []
            else:  # an opening timestamp (the second of a pair)
                start = stamp
        elif token < tokenizer.eot:
            current.append(token)
    if current:
        spans.append((start, None, current))
    return spans


def untimed_suppressed(tokenizer: TimestampTokenizer) -> list[int]:  # <|notimestamps|>, the timestamps
    return list(range(tokenizer.timestamp_begin - 1, tokenizer.timestamp_begin + TIMESTAMP_TOKENS))


def window_result(
    segments: list[Segment],
    text: str,
    temperature: float,
    avg_logprob: float,
    no_speech_prob: float,
    consumed: float,
    tokens: list[int],
    ended: bool = False,
    looped: bool = False,
) -> WindowResult:
    """The decode's statistics, copied onto each segment as openai-whisper's verbose_json reports them."""
    ratio = compression_ratio(text)
    stats = dict(
        temperature=float(temperature),
        avg_logprob=float(avg_logprob),
        compression_ratio=ratio,
        no_speech_prob=float(no_speech_prob),
    )
    return WindowResult(
        segments=tuple(replace(s, **stats) for s in segments),
        text=text,
        consumed=consumed,
        tokens=tuple(tokens),
        ended=ended,
        looped=looped,
        **stats,
    )


def with_logprobs(
    segments: list[Segment], tokens: list[int], token_logprobs: list[float], tokenizer: TimestampTokenizer
) -> list[Segment]:
    """Each segment with its text tokens' (text, log-probability): `token_logprobs[i]` belongs to
    `tokens[i]`; a segment's tokens are the next text tokens of the window, in order."""
    text = [(t, lp) for t, lp in zip(tokens, token_logprobs) if t < tokenizer.eot]
    out, position = [], 0
    for segment in segments:
        mine = text[position : position + len(segment.tokens)]
        position += len(segment.tokens)
        pairs = tuple((tokenizer.decode([t]), float(lp)) for t, lp in mine)
        out.append(replace(segment, logprobs=pairs))
    return out


def sampling_seed(windows: list[np.ndarray], temperature: float) -> int:
    """A seed for temperature > 0 taken from the audio itself: the same request decodes to the same text,
    run after run (fallback sampling would otherwise make two identical requests disagree)."""
    seed = zlib.crc32(np.float32(temperature).tobytes())
    for window in windows:
        seed = zlib.crc32(np.ascontiguousarray(window).view(np.uint8), seed)
    return seed


def compression_ratio(text: str) -> float:
    """openai-whisper's repetition measure: UTF-8 length over zlib-compressed length."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def words_of(segment: dict) -> tuple[Word, ...]:
    """The words of a segment dict (both libraries' word-alignment output)."""
    return tuple(
        Word(w["word"], float(w["start"]), float(w["end"]), float(w["probability"]))
        for w in segment.get("words", [])
    )
