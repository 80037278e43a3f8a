"""Benchmarks and tests only: engines that decode exactly N tokens per window, so that every side of a
comparison (and every request of a load test) does equal, known work. The service ships without this.

- In a process: `with forcing(engine, 96): engine.decode(...)` turns a loaded service engine into its forced
  kind for the block.
- Under gunicorn: `WHISPER_FORCE_TOKENS=N gunicorn -c gunicorn.conf.py 'bench.forced:create_app()'`
  (`app_argument(env)` gives the last argument): the service's app, its engines forced.

Random weights make the text noise; the work (the encoder, then N decoder steps per window, end-of-text
suppressed) is real. With forced lengths timestamps are noise too, so sequential mode steps 30 s a window.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

VARIABLE = "WHISPER_FORCE_TOKENS"  # decoder steps per window; 0 or unset: the service as it ships


def app_argument(env: Mapping[str, str]) -> list[str]:
    """gunicorn's app argument for a server started with `env`: the forced app when it asks for it."""
    return ["bench.forced:create_app()"] if int(env.get(VARIABLE) or 0) else []


def create_app():
    """The service's app with every engine it builds forced to WHISPER_FORCE_TOKENS tokens per window."""
    import service
    import service.engines

    tokens, build = int(os.environ.get(VARIABLE) or 0), service.engines.create_engine

    def create_engine(settings, device_index: int = 0):
        engine = build(settings, device_index)
        engine.__class__, engine.force_tokens = forced_class(type(engine)), tokens
        return engine

    service.engines.create_engine = create_engine
    return service.create_app()


@contextlib.contextmanager
def forcing(engine: Any, tokens: int) -> Iterator[Any]:
    """`engine` decodes exactly `tokens` tokens per window in this block (0: as it ships)."""
    kind = type(engine)
    engine.__class__, engine.force_tokens = forced_class(kind), tokens
    try:
        yield engine
    finally:
        engine.__class__ = kind
        del engine.force_tokens


_FORCED: dict[type, type] = {}


def forced_class(kind: type) -> type:
    """The forced subclass of a service engine class (openai-whisper's or faster-whisper's): its methods
    are the engine's, but for the few below, which call the engine's own (`_base`) when nothing is forced.
    A subclass of the engine alone, so that a loaded engine object can take it on in place (`forcing`)."""
    if kind not in _FORCED:
        methods = ForcedFasterWhisper if kind.name == "faster-whisper" else ForcedOpenAIWhisper
        own = {k: v for k, v in vars(methods).items() if not k.startswith("__")}
        _FORCED[kind] = type(f"Forced{kind.__name__}", (kind,), {**own, "_base": kind})
    return _FORCED[kind]


class ForcedOpenAIWhisper:
    """openai-whisper: a DecodingTask that samples exactly N tokens (batched decode, and transcribe())."""

    force_tokens = 0

    def _task(self, decoding, windows):
        if not self.force_tokens:
            return self._base._task(self, decoding, windows)
        return forced_task(self.force_tokens)(self.model, decoding)

    def transcribe(self, *args, **kwargs):
        if not self.force_tokens:
            return self._base.transcribe(self, *args, **kwargs)
        with forced_length(self.force_tokens), _keywords(self.model, "transcribe", without_timestamps=True):
            return self._base.transcribe(self, *args, **kwargs)


class ForcedFasterWhisper:
    """faster-whisper: end-of-text suppressed and CTranslate2's max_length set to give exactly N tokens."""

    force_tokens = 0

    def _generate_options(self, tokenizer, options, prompt: int, budget: int) -> dict:
        from service.engines.faster_whisper_ct2 import max_length_for

        generated = self._base._generate_options(self, tokenizer, options, prompt, budget)
        if self.force_tokens:
            generated["suppress_tokens"] = [*generated["suppress_tokens"], tokenizer.eot]
            generated["max_length"] = max_length_for(prompt, self.force_tokens)
        return generated

    def _bounded(self, tokens: list[int], eot: int, budget: int) -> tuple[list[int], bool]:
        return (tokens, False) if self.force_tokens else self._base._bounded(self, tokens, eot, budget)

    def transcribe(self, audio, options, *args, **kwargs):
        if not self.force_tokens:
            return self._base.transcribe(self, audio, options, *args, **kwargs)
        eot = self.tokenizer(options.task, options.language).eot
        with (
            ct2_forced_length(self.model, self.force_tokens),
            _keywords(self.model, "transcribe", suppress_tokens=[-1, eot]),
        ):
            return self._base.transcribe(self, audio, options, *args, **kwargs)


@contextlib.contextmanager
def _keywords(owner: Any, method: str, **forced: Any) -> Iterator[None]:
    """`owner.method` called with `forced` keywords (over the caller's) in this block."""
    original = getattr(owner, method)
    setattr(owner, method, lambda *args, **kwargs: original(*args, **{**kwargs, **forced}))
    try:
        yield
    finally:
        delattr(owner, method)  # the class's own method again


# -- openai-whisper ------------------------------------------------------------------------------------------
def forced_task(tokens: int) -> type:
    """The service's decoding task (BatchedGroups), sampling exactly `tokens` tokens per window."""
    import numpy as np
    from whisper.decoding import LogitFilter

    from service.engines.openai_whisper_tasks import BatchedGroups

    class SuppressEndUntil(LogitFilter):
        """Forbid end-of-text before `length` sampled tokens."""

        def __init__(self, eot: int, sample_begin: int, length: int):
            self.eot, self.until = eot, sample_begin + length

        def apply(self, logits, tokens) -> None:
            if tokens.shape[1] < self.until:
                logits[:, self.eot] = -np.inf

    class Forced(BatchedGroups):
        def __init__(self, model, options):
            super().__init__(model, replace(options, sample_len=tokens))
            self.logit_filters.append(SuppressEndUntil(self.tokenizer.eot, self.sample_begin, tokens))

    return Forced


@contextlib.contextmanager
def forced_length(tokens: int) -> Iterator[None]:
    """Make every `whisper.decode` in this block (transcribe() too) sample exactly `tokens` tokens."""
    import whisper.decoding as decoding

    original = decoding.DecodingTask
    decoding.DecodingTask = forced_task(tokens)
    try:
        yield
    finally:
        decoding.DecodingTask = original


# -- faster-whisper ------------------------------------------------------------------------------------------
class ForcedLength:
    """A CTranslate2 Whisper whose `generate` always decodes exactly `tokens` tokens; for transcribe(),
    where faster-whisper computes max_length itself from the prompt of each window."""

    def __init__(self, model: Any, tokens: int):
        self.model, self.tokens = model, tokens

    def generate(self, features, prompts, **options):
        from service.engines.faster_whisper_ct2 import max_length_for

        options["max_length"] = max_length_for(len(prompts[0]), self.tokens)
        return self.model.generate(features, prompts, **options)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


@contextlib.contextmanager
def ct2_forced_length(model: Any, tokens: int) -> Iterator[None]:
    """Make every generate() of the faster_whisper.WhisperModel `model` in this block decode exactly
    `tokens` tokens (0: unchanged)."""
    if not tokens:
        yield
        return
    original = model.model
    model.model = ForcedLength(original, tokens)
    try:
        yield
    finally:
        model.model = original
