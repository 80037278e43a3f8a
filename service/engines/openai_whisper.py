"""The reference engine: openai-whisper on torch. The only module that touches whisper's model code."""

from __future__ import annotations

import logging
import os
from dataclasses import replace

import numpy as np
import torch
import whisper
from whisper.decoding import DecodingOptions, DecodingTask
from whisper.model import ModelDimensions, Whisper
from whisper.timing import add_word_timestamps
from whisper.tokenizer import Tokenizer, get_tokenizer

from ..audio import HOP_LENGTH, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SAMPLES
from ..settings import Settings
from ..transcript import Segment
from .base import (
    DecodeOptions,
    Engine,
    Thresholds,
    Transcribed,
    WindowResult,
    download_failed,
    sampling_seed,
    window_result,
    words_of,
)
from .looping import loops, token_budget
from .openai_whisper_tasks import BatchedGroups, bounded_task, short_features
from .segments import split_segments, untimed_suppressed, with_logprobs

log = logging.getLogger(__name__)


class OpenAIWhisperEngine(Engine):
    name = "openai-whisper"
    untimed_beam_size = 0  # BEAM_SIZE: beam search costs it twice its time on a CPU (docs/performance.md)
    gpu_batch_size, cpu_batch_size = 16, 8  # docs/performance.md
    shortens_context = True  # openai_whisper_tasks.short_features

    def __init__(self, settings: Settings, device_index: int = 0):
        super().__init__(settings, device_index)
        self.device = resolve_device(settings.whisper_device, device_index)
        self.precision = "float16" if self.device.startswith("cuda") else "float32"
        self.model: Whisper | None = None

    # -- loading -------------------------------------------------------------------------------------------
    def load(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.set_device(self.device)
        elif self.settings.cpu_threads:
            torch.set_num_threads(self.settings.cpu_threads)
        if os.path.isfile(self.source):
            self.model = load_checkpoint(self.source, self.device)
        else:
            self.model = self._load_official()
        self.model.eval()
        self.is_multilingual = self.model.is_multilingual

    def _load_official(self) -> Whisper:
        if self.source not in whisper.available_models():
            raise FileNotFoundError(
                f"WHISPER_MODEL={self.source!r} is neither a file nor an official name "
                f"({', '.join(whisper.available_models())})"
            )
        try:
            return whisper.load_model(
                self.source, device=self.device, download_root=self.settings.whisper_model_dir
            )
        except OSError as error:  # urllib's URLError and socket errors are OSErrors
            raise download_failed(self.source, error) from None

    def tokenizer(self, task: str = "transcribe", language: str | None = None) -> Tokenizer:
        return get_tokenizer(
            self.model.is_multilingual, num_languages=self.model.num_languages, language=language, task=task
        )

    def _mels(self, windows: list[np.ndarray], frames: int = WINDOW_FRAMES) -> torch.Tensor:
        """(batch, n_mels, 3000) log-mel spectrograms on the model's device, made as transcribe() makes them:
        the window's own frames, then zeros in log-mel space up to 30 s (not the log-mel of silent audio,
        which is a different input and measurably worse on short or noisy windows); fewer `frames` give a
        shorter input (DecodeOptions.frames)."""
        mels = []
        for window in windows:
            audio = torch.from_numpy(np.ascontiguousarray(window[:WINDOW_SAMPLES])).to(self.device)
            mel = whisper.log_mel_spectrogram(audio, n_mels=self.model.dims.n_mels, padding=WINDOW_SAMPLES)
            mels.append(whisper.pad_or_trim(mel[:, : len(audio) // HOP_LENGTH], frames))
        return torch.stack(mels)

    # -- inference -----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def detect_language(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        if not self.is_multilingual:
            return [{"en": 1.0} for _ in windows]
        mel = self._mels(windows)
        if self.precision == "float16":
            mel = mel.half()
        _, probs = self.model.detect_language(mel, self.tokenizer())
        return probs

    @torch.inference_mode()
    def decode(self, windows: list[np.ndarray], options: DecodeOptions) -> list[WindowResult]:
        mel = self._mels(windows, options.frames)
        decoding = DecodingOptions(
            task=options.task,
            language=options.language,
            temperature=options.temperature,
            prompt=self._prompt_tokens(options),
            beam_size=options.beam_size if options.temperature == 0 else None,
            best_of=options.best_of if options.temperature > 0 else None,
            without_timestamps=not options.timestamps,
            suppress_tokens="-1" if options.timestamps else [-1, *untimed_suppressed(self.tokenizer())],
            fp16=self.precision == "float16",
        )
        if options.temperature > 0:
            torch.manual_seed(sampling_seed(windows, options.temperature))
        results = self._task(decoding, windows).run(mel)
        tokenizer = self.tokenizer(options.task, options.language)
        out = []
        for i, (window, result) in enumerate(zip(windows, results)):
            segments, consumed, ended = split_segments(result.tokens, tokenizer, len(window) / SAMPLE_RATE)
            if options.word_timestamps and segments:
                segments = self._align_words(segments, tokenizer, mel[i], len(window) // HOP_LENGTH)
            if options.logprobs and segments:
                scores = self._token_logprobs(mel[i], decoding, result.tokens)
                segments = with_logprobs(segments, result.tokens, scores, tokenizer)
            out.append(
                window_result(
                    segments,
                    result.text,
                    result.temperature,
                    result.avg_logprob,
                    result.no_speech_prob,
                    consumed,
                    result.tokens,
                    ended=ended,
                    looped=loops([t for t in result.tokens if t < tokenizer.eot]),
                )
            )
        return out

    def _task(self, decoding: DecodingOptions, windows: list[np.ndarray]) -> DecodingTask:
        """The decoding task: each window stops at its token budget or at a loop (looping.py)."""
        budgets = [token_budget(len(w) / SAMPLE_RATE, self.model.dims.n_text_ctx // 2) for w in windows]
        return bounded_task(BatchedGroups, self.model, decoding, budgets)

    def _token_logprobs(self, mel: torch.Tensor, decoding: DecodingOptions, tokens: list[int]) -> list[float]:
        """Teacher-forced: the log-probability of each sampled token given the ones before (include[])."""
        task = DecodingTask(self.model, decoding)
        context = torch.tensor([list(task.initial_tokens) + list(tokens)], device=mel.device)
        features = short_features(  # upstream's encoder on a whole window, and on a shortened one too
            self.model, mel[None].to(self.model.dtype if hasattr(self.model, "dtype") else mel.dtype)
        )
        logits = self.model.logits(context, features)[0, len(task.initial_tokens) - 1 : -1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        return logprobs[torch.arange(len(tokens)), torch.tensor(tokens)].tolist()

    def _prompt_tokens(self, options: DecodeOptions) -> list[int] | None:
        """Hotwords, then the prompt: the tokens faster-whisper's get_prompt puts after <|startofprev|>."""
        text = with_hotwords(options)
        return self.tokenizer(options.task, options.language).encode(" " + text) if text else None

    def _align_words(
        self, segments: list[Segment], tokenizer: Tokenizer, mel: torch.Tensor, num_frames: int
    ) -> list[Segment]:
        dicts = [
            {"seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": list(s.tokens)}
            for s in segments
        ]
        add_word_timestamps(
            segments=dicts,
            model=self.model,
            tokenizer=tokenizer,
            mel=mel,
            num_frames=num_frames,
            last_speech_timestamp=0.0,
        )
        return [
            replace(s, start=float(d["start"]), end=float(d["end"]), words=words_of(d))
            for s, d in zip(segments, dicts)
        ]

    @torch.inference_mode()
    def transcribe(
        self,
        audio: np.ndarray,
        options: DecodeOptions,
        temperatures: tuple[float, ...],
        thresholds: Thresholds,
        condition_on_previous_text: bool,
    ) -> Transcribed:
        result = self.model.transcribe(
            audio,
            task=options.task,
            language=options.language,
            temperature=temperatures,
            initial_prompt=with_hotwords(options) or None,
            carry_initial_prompt=bool(options.hotwords),  # hotwords in every window, as faster-whisper
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
        )
        return result["language"], [segment_of(s) for s in result["segments"]]

    # -- device --------------------------------------------------------------------------------------------
    def memory(self) -> dict[str, tuple[int, int]]:
        if not self.device.startswith("cuda"):
            return {}
        return {
            self.device: (torch.cuda.memory_allocated(self.device), torch.cuda.memory_reserved(self.device))
        }

    @staticmethod
    def is_out_of_memory(error: BaseException) -> bool:
        return isinstance(error, torch.cuda.OutOfMemoryError) or Engine.is_out_of_memory(error)

    def release_cache(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def resolve_device(requested: str, index: int = 0) -> str:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("WHISPER_DEVICE=cuda but torch sees no CUDA device")
        return f"cuda:{index % torch.cuda.device_count()}"
    return "cpu"


def load_checkpoint(path: str, device: str) -> Whisper:
    """A .pt checkpoint in openai-whisper's format. Word-alignment heads: the checkpoint's own
    `alignment_heads` ([layer, head] pairs, written by `make convert`), else openai-whisper's table when the
    file is an official model, else whisper's default (the last half of the decoder layers)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    model = Whisper(ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(checkpoint["model_state_dict"])
    heads = checkpoint.get("alignment_heads")
    if heads:
        mask = torch.zeros(model.dims.n_text_layer, model.dims.n_text_head, dtype=torch.bool)
        for layer, head in heads:
            mask[layer, head] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    else:
        official = official_name(path)
        if official:
            model.set_alignment_heads(whisper._ALIGNMENT_HEADS[official])
    return model.to(device)


def official_name(path: str) -> str | None:
    """The official model a file is (its SHA-256 is part of openai-whisper's download URL), or None."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 24), b""):
            digest.update(block)
    by_hash = {url.split("/")[-2]: name for name, url in whisper._MODELS.items()}
    return by_hash.get(digest.hexdigest())


def segment_of(s: dict) -> Segment:
    """A segment of transcribe()'s result (absolute times already)."""
    return Segment(
        start=float(s["start"]),
        end=float(s["end"]),
        text=s["text"],
        tokens=tuple(s["tokens"]),
        words=words_of(s) if "words" in s else None,
        temperature=float(s["temperature"]),
        avg_logprob=float(s["avg_logprob"]),
        compression_ratio=float(s["compression_ratio"]),
        no_speech_prob=float(s["no_speech_prob"]),
        seek=int(s["seek"]),
    )


def with_hotwords(options: DecodeOptions) -> str:
    """openai-whisper has no hotwords: they go before the prompt, where faster-whisper puts them."""
    return " ".join(filter(None, [(options.hotwords or "").strip(), (options.prompt or "").strip()]))


ENGINE = OpenAIWhisperEngine  # what service.engines.create_engine builds for this module's WHISPER_ENGINE
