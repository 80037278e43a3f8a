"""The reference engine: openai-whisper on torch. The only module that touches whisper's model code."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import whisper
from whisper.audio import HOP_LENGTH, N_SAMPLES
from whisper.decoding import DecodingOptions, DecodingResult, DecodingTask, LogitFilter
from whisper.timing import add_word_timestamps
from whisper.tokenizer import Tokenizer, get_tokenizer

from .base import (
    SAMPLE_RATE,
    DecodeOptions,
    Engine,
    Segment,
    Thresholds,
    Transcript,
    WindowResult,
    Word,
    split_segments,
)

log = logging.getLogger(__name__)


class SuppressEndUntil(LogitFilter):
    """Benchmark aid: forbid end-of-text before `length` sampled tokens, so every side decodes equal work."""

    def __init__(self, eot: int, sample_begin: int, length: int):
        self.eot, self.until = eot, sample_begin + length

    def apply(self, logits: torch.Tensor, tokens: torch.Tensor) -> None:
        if tokens.shape[1] < self.until:
            logits[:, self.eot] = -np.inf


class ForcedLengthTask(DecodingTask):
    """whisper's DecodingTask that samples exactly `force_tokens` tokens per window when asked."""

    force_tokens = 0

    def __init__(self, model: whisper.Whisper, options: DecodingOptions):
        if self.force_tokens:
            options = DecodingOptions(**{**options.__dict__, "sample_len": self.force_tokens})
        super().__init__(model, options)
        if self.force_tokens:
            eot = self.tokenizer.eot
            self.logit_filters.append(SuppressEndUntil(eot, self.sample_begin, self.force_tokens))


@contextlib.contextmanager
def forced_length(tokens: int) -> Iterator[None]:
    """Make every `whisper.decode` in this block (transcribe() too) sample exactly `tokens` tokens."""
    import whisper.decoding as decoding

    original = decoding.DecodingTask
    decoding.DecodingTask = type("Forced", (ForcedLengthTask,), {"force_tokens": tokens})
    try:
        yield
    finally:
        decoding.DecodingTask = original


def resolve_device(requested: str, index: int = 0) -> str:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("WHISPER_DEVICE=cuda but torch sees no CUDA device")
        return f"cuda:{index % torch.cuda.device_count()}"
    return "cpu"


class OpenAIWhisperEngine(Engine):
    name = "openai-whisper"

    def __init__(self, model: str, device: str = "auto", download_root: str | None = None,
                 device_index: int = 0):  # fmt: skip
        self.source = model
        self.model_name = Path(model).stem if model.endswith(".pt") else model
        self.device = resolve_device(device, device_index)
        self.precision = "float16" if self.device.startswith("cuda") else "float32"
        self.batch_size = 16 if self.device.startswith("cuda") else 4
        self.download_root = download_root
        self.model: whisper.Whisper | None = None

    # -- loading -------------------------------------------------------------------------------------------
    def load(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.set_device(self.device)
        elif os.environ.get("WHISPER_CPU_THREADS"):
            torch.set_num_threads(int(os.environ["WHISPER_CPU_THREADS"]))
        self.model = whisper.load_model(self.source, device=self.device, download_root=self.download_root)
        self.model.eval()
        self.is_multilingual = self.model.is_multilingual

    def tokenizer(self, task: str = "transcribe", language: str | None = None) -> Tokenizer:
        return get_tokenizer(
            self.model.is_multilingual,
            num_languages=self.model.num_languages,
            language=language,
            task=task,
        )

    def _mels(self, windows: list[np.ndarray]) -> torch.Tensor:
        """(batch, n_mels, 3000) log-mel spectrograms of windows padded to 30 s, on the model's device."""
        n_mels = self.model.dims.n_mels
        audio = torch.from_numpy(np.stack([whisper.pad_or_trim(w, N_SAMPLES) for w in windows]))
        return whisper.log_mel_spectrogram(audio.to(self.device), n_mels=n_mels)

    # -- inference -----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def detect_language(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        mel = self._mels(windows)
        if self.precision == "float16":
            mel = mel.half()
        _, probs = self.model.detect_language(mel, self.tokenizer())
        return probs

    @torch.inference_mode()
    def decode(self, windows: list[np.ndarray], options: DecodeOptions) -> list[WindowResult]:
        mel = self._mels(windows)
        task_type = type("Task", (ForcedLengthTask,), {"force_tokens": options.force_tokens})
        decoding = DecodingOptions(
            task=options.task,
            language=options.language,
            temperature=options.temperature,
            prompt=self._prompt_tokens(options),
            beam_size=options.beam_size if options.temperature == 0 else None,
            best_of=options.best_of if options.temperature > 0 else None,
            fp16=self.precision == "float16",
        )
        results = task_type(self.model, decoding).run(mel)
        tokenizer = self.tokenizer(options.task, options.language)
        out = []
        for i, (window, result) in enumerate(zip(windows, results)):
            seconds = len(window) / SAMPLE_RATE
            segments = split_segments(result.tokens, tokenizer, seconds)
            if options.word_timestamps and segments:
                self._align_words(segments, tokenizer, mel[i], len(window) // HOP_LENGTH)
            out.append(window_result(result, segments))
        return out

    def _prompt_tokens(self, options: DecodeOptions) -> list[int] | None:
        if not options.prompt:
            return None
        return self.tokenizer(options.task, options.language).encode(" " + options.prompt.strip())

    def _align_words(self, segments: list[Segment], tokenizer: Tokenizer, mel: torch.Tensor,
                     num_frames: int) -> None:  # fmt: skip
        dicts = [{"seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": s.tokens}
                 for s in segments]  # fmt: skip
        add_word_timestamps(
            segments=dicts, model=self.model, tokenizer=tokenizer, mel=mel,
            num_frames=num_frames, last_speech_timestamp=0.0,
        )  # fmt: skip
        for segment, aligned in zip(segments, dicts):
            segment.start, segment.end = float(aligned["start"]), float(aligned["end"])
            segment.words = [Word(w["word"], float(w["start"]), float(w["end"]), float(w["probability"]))
                             for w in aligned.get("words", [])]  # fmt: skip

    @torch.inference_mode()
    def transcribe(self, audio: np.ndarray, options: DecodeOptions, temperatures: tuple[float, ...],
                   thresholds: Thresholds, condition_on_previous_text: bool) -> Transcript:  # fmt: skip
        with forced_length(options.force_tokens) if options.force_tokens else contextlib.nullcontext():
            result = self.model.transcribe(
                audio,
                task=options.task,
                language=options.language,
                temperature=temperatures,
                initial_prompt=options.prompt,
                beam_size=options.beam_size,
                best_of=options.best_of,
                word_timestamps=options.word_timestamps,
                compression_ratio_threshold=thresholds.compression_ratio,
                logprob_threshold=thresholds.logprob,
                no_speech_threshold=thresholds.no_speech,
                hallucination_silence_threshold=thresholds.hallucination_silence,
                condition_on_previous_text=condition_on_previous_text,
                fp16=self.precision == "float16",
                verbose=None,
                # benchmark only: with forced lengths, timestamps are noise; step a full 30 s each window
                without_timestamps=bool(options.force_tokens),
            )
        return Transcript(result["language"], [from_transcribe_segment(s) for s in result["segments"]])

    # -- device --------------------------------------------------------------------------------------------
    def memory(self) -> dict[str, tuple[int, int]]:
        if not self.device.startswith("cuda"):
            return {}
        return {
            self.device: (
                torch.cuda.memory_allocated(self.device),
                torch.cuda.memory_reserved(self.device),
            )
        }

    @staticmethod
    def is_out_of_memory(error: BaseException) -> bool:
        return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()

    def release_cache(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def window_result(result: DecodingResult, segments: list[Segment]) -> WindowResult:
    return WindowResult(
        segments=segments,
        text=result.text,
        temperature=result.temperature,
        avg_logprob=result.avg_logprob,
        compression_ratio=result.compression_ratio,
        no_speech_prob=result.no_speech_prob,
        tokens=list(result.tokens),
    )


def from_transcribe_segment(s: dict) -> tuple[Segment, WindowResult]:
    words = [Word(w["word"], w["start"], w["end"], w["probability"]) for w in s.get("words", [])]
    segment = Segment(s["start"], s["end"], s["text"], s["tokens"], words if "words" in s else None)
    stats = WindowResult([], s["text"], s["temperature"], s["avg_logprob"], s["compression_ratio"],
                         s["no_speech_prob"])  # fmt: skip
    return segment, stats
