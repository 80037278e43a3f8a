"""Benchmarks only (WHISPER_FORCE_TOKENS): faster-whisper decodes exactly N tokens per window, so that
both engines do equal work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import ctranslate2
from faster_whisper import WhisperModel


def forced_max_length(prompt_length: int, tokens: int) -> int:
    """The `max_length` for which CTranslate2 generates exactly `tokens` new tokens (end-of-text suppressed).

    CTranslate2's Whisper generates min(max_length // 2, max_length - prompt_length + 1) tokens (measured
    with 4.8.5 for prompts of 3 to 23 tokens), so the larger of the two bounds that give `tokens` is taken.
    """
    return max(2 * tokens, tokens + prompt_length - 1)


class ForcedLength:
    """A CTranslate2 Whisper whose `generate` always decodes exactly `tokens` tokens; for transcribe(),
    where faster-whisper computes max_length itself from the prompt of each window."""

    def __init__(self, model: ctranslate2.models.Whisper, tokens: int):
        self.model, self.tokens = model, tokens

    def generate(self, features, prompts, **options):
        options["max_length"] = forced_max_length(len(prompts[0]), self.tokens)
        return self.model.generate(features, prompts, **options)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


@contextlib.contextmanager
def forced_length(model: WhisperModel, tokens: int) -> Iterator[None]:
    """Make every generate() of `model` in this block decode exactly `tokens` tokens (0: unchanged)."""
    if not tokens:
        yield
        return
    original = model.model
    model.model = ForcedLength(original, tokens)
    try:
        yield
    finally:
        model.model = original
