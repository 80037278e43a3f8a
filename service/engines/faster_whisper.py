"""The second engine: faster-whisper on CTranslate2. The only module that touches faster_whisper/ctranslate2.

Windows are decoded as one CTranslate2 batch (encode once, generate once), cut into segments by the same
`split_segments` as the reference engine, and word-aligned with faster-whisper's own alignment. torch is never
imported here, so a faster-whisper worker does not pay for it in memory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer

from ..audio import HOP_LENGTH, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SAMPLES
from ..settings import Settings
from ..transcript import Segment
from . import hub
from .base import (
    DecodeOptions,
    Engine,
    ModelUnavailable,
    Thresholds,
    Transcribed,
    WindowResult,
    sampling_seed,
    window_result,
    words_of,
)
from .faster_whisper_ct2 import (
    OFFICIAL_TEXT_CTX,
    ct2_options,
    given_alignment,
    mean_logprob,
    resolve_compute_type,
    resolve_device,
    segment_of,
    step_logprobs,
    text_context,
)
from .looping import bounded, token_budget
from .nvml import nvml_used_bytes
from .segments import split_segments, with_logprobs

log = logging.getLogger(__name__)

PREPEND_PUNCTUATIONS = "\"'“¿([{-"  # openai-whisper's defaults, so that both engines group words alike
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


class FasterWhisperEngine(Engine):
    name = "faster-whisper"
    best_after_ladder = True  # as its transcribe(): the decode with the best avg_logprob, unrepetitive first
    untimed_beam_size = 5  # as faster-whisper's batched pipeline (untimed greedy loses words on clips)
    gpu_batch_size, cpu_batch_size = 16, 8  # docs/performance.md
    shortens_context = True  # CTranslate2's encoder takes an input shorter than 30 s (_encode)

    def __init__(self, settings: Settings, device_index: int = 0):
        super().__init__(settings, device_index)
        if self.source.endswith(".pt"):
            raise ModelUnavailable(
                f"WHISPER_MODEL={self.source} is an openai-whisper checkpoint; faster-whisper needs a "
                f"CTranslate2 directory: make convert SRC={self.source} DST={self.source[:-3]}-ct2/"
            )
        self.kind, self.index = resolve_device(settings.whisper_device, device_index)
        self.device = f"cuda:{self.index}" if self.kind == "cuda" else "cpu"
        self.precision = resolve_compute_type(settings.whisper_compute_type, self.kind)
        self.model: WhisperModel | None = None
        self.text_ctx = OFFICIAL_TEXT_CTX

    # -- loading -------------------------------------------------------------------------------------------
    def load(self) -> None:
        self.model = hub.whisper_model(
            self.source,
            device=self.kind,
            device_index=self.index,
            compute_type=self.precision,
            cpu_threads=self.settings.cpu_threads,
            download_root=self.settings.whisper_model_dir,
        )
        if os.path.isdir(self.source):
            self.text_ctx = text_context(self.source)
        # faster-whisper assumes 448 positions; a converted small model has fewer (prompt cut, max length).
        self.model.max_length = self.text_ctx
        self.is_multilingual = self.model.model.is_multilingual

    def tokenizer(self, task: str = "transcribe", language: str | None = None) -> Tokenizer:
        return Tokenizer(self.model.hf_tokenizer, self.is_multilingual, task=task, language=language or "en")

    def _encode(self, windows: list[np.ndarray], frames: int = WINDOW_FRAMES) -> ctranslate2.StorageView:
        """Log-mel of each window, zero-padded in log-mel space to 30 s (or fewer `frames`: CTranslate2's
        encoder takes a shorter input) as both libraries' transcribe() pad a segment, encoded as one batch."""
        extract, mels = self.model.feature_extractor, []
        for window in windows:
            window = np.ascontiguousarray(window[:WINDOW_SAMPLES], dtype=np.float32)
            mel = extract(window)[:, : min(len(window) // HOP_LENGTH, frames)]
            mels.append(np.pad(mel, ((0, 0), (0, frames - mel.shape[1]))))
        return self.model.encode(np.stack(mels).astype(np.float32))

    # -- inference -----------------------------------------------------------------------------------------
    def detect_language(self, windows: list[np.ndarray]) -> list[dict[str, float]]:
        return self._languages(self._encode(windows))

    def _languages(self, features: ctranslate2.StorageView) -> list[dict[str, float]]:
        if not self.is_multilingual:
            return [{"en": 1.0} for _ in range(features.shape[0])]
        return [
            {token[2:-2]: prob for token, prob in window}
            for window in self.model.model.detect_language(features)
        ]

    def _generate_options(self, tokenizer: Tokenizer, options: DecodeOptions, prompt: int, budget: int):
        """CTranslate2's generate() options for windows of at most `budget` new tokens after a prompt."""
        return ct2_options(tokenizer, options, prompt, budget, self.text_ctx)

    def _bounded(self, tokens: list[int], eot: int, budget: int) -> tuple[list[int], bool]:
        """A window's tokens cut where openai-whisper's engine stops sampling, and whether its text loops."""
        return bounded(tokens, eot, budget)

    def decode(self, windows: list[np.ndarray], options: DecodeOptions) -> list[WindowResult]:
        features = self._encode(windows, options.frames)
        tokenizer = self.tokenizer(options.task, options.language)
        prompts = self._prompts(tokenizer, options, features)
        budgets = [token_budget(len(w) / SAMPLE_RATE, self.text_ctx // 2) for w in windows]
        generate_options = self._generate_options(tokenizer, options, len(prompts[0]), max(budgets))
        if options.temperature > 0:
            ctranslate2.set_random_seed(sampling_seed(windows, options.temperature))
        results = self.model.model.generate(features, prompts, **generate_options)
        per_window = []
        for window, result, budget in zip(windows, results, budgets):
            # cut where openai-whisper's engine stops sampling (looping.py)
            tokens, looped = self._bounded(list(result.sequences_ids[0]), tokenizer.eot, budget)
            segments, consumed, ended = split_segments(tokens, tokenizer, len(window) / SAMPLE_RATE)
            if options.logprobs and segments:
                segments = with_logprobs(segments, tokens, step_logprobs(result, tokens), tokenizer)
            per_window.append((tokens, segments, consumed, result, ended, looped))
        aligned = [window[1] for window in per_window]
        if options.word_timestamps:
            aligned = self._align_words(aligned, tokenizer, features, windows)
        return [
            window_result(
                segments,
                tokenizer.decode(tokens).strip(),
                options.temperature,
                mean_logprob(result, tokens),
                result.no_speech_prob,
                consumed,
                tokens,
                ended=ended,
                looped=looped,
            )
            for (tokens, _, consumed, result, ended, looped), segments in zip(per_window, aligned)
        ]

    def _prompts(
        self, tokenizer: Tokenizer, options: DecodeOptions, features: ctranslate2.StorageView
    ) -> list[list[int]]:
        """Hotwords and previous text, then the start sequence; each window's own language if none given."""
        previous = tokenizer.encode(" " + options.prompt.strip()) if options.prompt else []
        prompt = self.model.get_prompt(
            tokenizer, previous, without_timestamps=not options.timestamps, hotwords=options.hotwords
        )
        if options.language or not self.is_multilingual:
            return [prompt] * features.shape[0]
        position = prompt.index(tokenizer.language)
        prompts = []
        for languages in self._languages(features):
            language = max(languages, key=languages.get)
            prompts.append(
                [
                    *prompt[:position],
                    tokenizer.tokenizer.token_to_id(f"<|{language}|>"),
                    *prompt[position + 1 :],
                ]
            )
        return prompts

    def _align_words(
        self,
        per_window: list[list[Segment]],
        tokenizer: Tokenizer,
        features: ctranslate2.StorageView,
        windows: list[np.ndarray],
    ) -> list[list[Segment]]:
        """faster-whisper's word alignment: one CTranslate2 `align` call for the batch, then its heuristics
        per window with no carry-over between windows (a request's timings must not depend on its batch)."""
        frames = [len(w) // HOP_LENGTH for w in windows]
        texts = [[t for s in segments for t in s.tokens if t < tokenizer.eot] for segments in per_window]
        batch = [i for i, text in enumerate(texts) if text]
        if not batch:
            return per_window
        if len(batch) < len(windows):
            features = self._encode([windows[i] for i in batch])
        alignments = self.model.find_alignment(
            tokenizer, [texts[i] for i in batch], features, [frames[i] for i in batch]
        )
        out = list(per_window)
        for i, alignment in zip(batch, alignments):
            dicts = [
                [{"seek": 0, "start": s.start, "end": s.end, "tokens": list(s.tokens)} for s in per_window[i]]
            ]
            with given_alignment(self.model, alignment):
                self.model.add_word_timestamps(
                    dicts, tokenizer, features, [frames[i]], PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS, 0.0
                )
            out[i] = [
                replace(s, start=float(d["start"]), end=float(d["end"]), words=words_of(d))
                for s, d in zip(per_window[i], dicts[0])
            ]
        return out

    def transcribe(
        self,
        audio: np.ndarray,
        options: DecodeOptions,
        temperatures: tuple[float, ...],
        thresholds: Thresholds,
        condition_on_previous_text: bool,
    ) -> Transcribed:
        segments, info = self.model.transcribe(
            audio,
            language=options.language,
            task=options.task,
            temperature=list(temperatures),
            beam_size=options.beam_size or 1,
            best_of=options.best_of or 1,
            initial_prompt=options.prompt,
            hotwords=options.hotwords,
            word_timestamps=options.word_timestamps,
            compression_ratio_threshold=thresholds.compression_ratio,
            log_prob_threshold=thresholds.logprob,
            no_speech_threshold=thresholds.no_speech,
            hallucination_silence_threshold=thresholds.hallucination_silence,
            condition_on_previous_text=condition_on_previous_text,
            vad_filter=False,
            suppress_tokens=[-1],
            prepend_punctuations=PREPEND_PUNCTUATIONS,
            append_punctuations=APPEND_PUNCTUATIONS,
        )
        return info.language, [segment_of(s) for s in segments]  # segments are decoded as they are read

    # -- device --------------------------------------------------------------------------------------------
    def memory(self) -> dict[str, tuple[int, int]]:
        """CTranslate2 reports no allocator figures; the device's used memory (NVML) stands for both."""
        if self.kind != "cuda":
            return {}
        used = nvml_used_bytes(self.index)
        return {} if used is None else {self.device: (used, used)}


ENGINE = FasterWhisperEngine  # what service.engines.create_engine builds for this module's WHISPER_ENGINE
