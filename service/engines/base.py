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

import numpy as np

from ..audio import HOP_LENGTH, SAMPLE_RATE, WINDOW_FRAMES
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
    # the model input's length: under 30 s only for an engine that shortens_context, untimed and without word
    # timestamps (a live turn's decodes, api/realtime/decoding.py)
    context_seconds: float = 30.0

    @property
    def frames(self) -> int:
        """The model input's log-mel frames: 3000 for a whole window, fewer for a shortened one."""
        return min(WINDOW_FRAMES, round(self.context_seconds * SAMPLE_RATE) // HOP_LENGTH)


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


class Engine(abc.ABC):
    """One model on one device. Only the scheduler's inference thread calls load/decode/transcribe."""

    name: str  # its WHISPER_ENGINE: "openai-whisper" | "faster-whisper" (settings/choices.py's ENGINES)
    # Each engine's own defaults, read from its class: the beam of untimed decoding when UNTIMED_BEAM_SIZE=0
    # (0: BEAM_SIZE), and the inputs of one model call when BATCH_SIZE=0 on a GPU and on a CPU.
    untimed_beam_size: int
    gpu_batch_size: int
    cpu_batch_size: int
    # when every temperature fails: the most likely decode (faster-whisper's transcribe()), else the last one
    best_after_ladder = False  # (openai-whisper's transcribe(): its T=1.0 sample); work.after_ladder()
    shortens_context = False  # decode() honours DecodeOptions.context_seconds under 30 s (a shorter input)

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

    def default_batch_size(self) -> int:
        """Inputs per model call when BATCH_SIZE=0: this engine's on its device (docs/performance.md)."""
        return self.gpu_batch_size if self.device.startswith("cuda") else self.cpu_batch_size

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
