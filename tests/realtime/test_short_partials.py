"""A live turn's partial decodes in a shortened model input (REALTIME_SHORT_PARTIALS): which decodes get one
(service/api/realtime/decoding.py, with test_partials.py's Queue for the scheduler), and what the real
tiny.en reads in one (engines/openai_whisper_tasks.py's short_features) against a whole 30 s window."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.realtime.decoding import FINAL, PARTIAL_MARGIN_SECONDS, WINDOW, Decoder, Item, shortened
from service.api.realtime.session import Session
from service.audio import SAMPLE_RATE
from service.engines.base import DecodeOptions
from service.engines.openai_whisper_tasks import short_features
from service.settings import from_env
from tools import speech

from .test_partials import SETTINGS, Queue


@given(samples=st.integers(1, WINDOW))
@settings(max_examples=500, deadline=None)
def test_a_shortened_input_holds_the_speech_a_margin_of_silence_and_whole_steps(samples):
    length = shortened(samples)
    assert length % (2 * SAMPLE_RATE) == 0 and 10 * SAMPLE_RATE <= length <= WINDOW
    assert length >= min(WINDOW, samples + PARTIAL_MARGIN_SECONDS * SAMPLE_RATE)
    assert length - 2 * SAMPLE_RATE < max(10 * SAMPLE_RATE, samples + PARTIAL_MARGIN_SECONDS * SAMPLE_RATE)


@pytest.fixture(scope="module")
def sentence(tmp_path_factory):
    clip = speech.sequence(tmp_path_factory.mktemp("one"), "one", [(0.3, 0, "en-us")], total=4.0)
    return speech.read_wav(clip.path)


def decodes(queue: Queue, audio: np.ndarray, env: dict | None = None):
    """The partial decode a session queues for a turn holding `audio`, then its final decode."""
    session = Session(Decoder(queue, from_env({"VAD": "true", **(env or {})}) if env else SETTINGS, None))
    session.detector = None
    session.buffer.append(audio)
    session.speaking = Item("item_1", None, 0)
    session.tick()
    partial = session.speaking.partial
    session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
    return partial, session.decoding[0].final


@pytest.mark.parametrize("seconds", [0.6, 2.5, 7.3, 19.0, 27.5])
def test_on_a_cpu_a_partial_is_decoded_in_a_shortened_input_and_the_final_in_a_window(sentence, seconds):
    audio = np.resize(sentence, round(seconds * SAMPLE_RATE))
    partial, final = decodes(Queue(gpu=False), audio)
    length = shortened(len(audio))
    assert partial.options.context_seconds == length / SAMPLE_RATE and len(partial.audio) == length
    assert np.array_equal(partial.audio[: len(audio)], audio) and not partial.audio[len(audio) :].any()
    assert [w.seconds for w in partial.windows] == [length / SAMPLE_RATE]
    assert final.live == FINAL and final.options.context_seconds == 30.0 and len(final.audio) == WINDOW


@pytest.mark.parametrize(
    "where",
    ["a GPU: partials share calls", "REALTIME_SHORT_PARTIALS=false", "an engine that does not shorten"],
)
def test_elsewhere_a_partial_is_decoded_in_a_whole_window(sentence, where):
    queue = Queue(gpu=where.startswith("a GPU"))
    queue.engine.shortens_context = where != "an engine that does not shorten"
    env = {"REALTIME_SHORT_PARTIALS": "false"} if where.startswith("REALTIME") else None
    partial, _ = decodes(queue, sentence[: 2 * SAMPLE_RATE], env)
    assert partial.options.context_seconds == 30.0 and len(partial.audio) == WINDOW


@pytest.fixture(scope="module")
def engine(tiny_en):
    from service.engines.openai_whisper import OpenAIWhisperEngine
    from service.settings import Settings

    engine = OpenAIWhisperEngine(Settings(whisper_model=str(tiny_en), whisper_device="cpu"))
    engine.load()
    return engine


def test_the_shortened_encoder_is_upstreams_on_a_whole_window(engine, sentence):
    mel = engine._mels([sentence])
    with torch.inference_mode():
        assert torch.allclose(short_features(engine.model, mel), engine.model.encoder(mel), atol=1e-5)


def test_partials_in_a_shortened_input_read_as_in_a_whole_window(engine, tmp_path):
    """Prefixes of two stories, cut at seeded random points from 1 to 26 s (often mid-word), decoded as a
    partial is (temperature 0, untimed) in the shortened input and in a whole window: the same words, within
    a word in ten over all of them, and no prefix reads longer (the loop tiny.en falls into when the input
    leaves no silence after the speech)."""
    rng = np.random.default_rng(7)
    errors = words = 0
    for seed in range(2):
        story = speech.read_wav(speech.story(tmp_path, 27, seed=seed, first=3 * seed, pauses=(0.1, 0.4)).path)
        for cut in sorted(rng.uniform(1.0, 26.0, 6)):
            audio = story[: round(cut * SAMPLE_RATE)]
            whole, short = (read(engine, audio, length) for length in (WINDOW, shortened(len(audio))))
            assert len(short.split()) <= len(whole.split()) + 2, (cut, whole, short)
            errors += speech.wer(whole, short) * len(whole.split())
            words += len(whole.split())
    assert words > 150 and errors / words < 0.1, errors / words


def read(engine, audio: np.ndarray, length: int) -> str:
    padded = np.concatenate([audio, np.zeros(length - len(audio), np.float32)])
    options = DecodeOptions(language="en", timestamps=False, context_seconds=length / SAMPLE_RATE)
    return engine.decode([padded], options)[0].text
