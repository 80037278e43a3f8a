"""A live turn's decodes in a shortened model input (REALTIME_SHORT_INPUT): which decodes get one
(service/api/realtime/decoding.py, with test_partials.py's Queue for the scheduler), and what the real
tiny.en reads in one, on both engines (openai_whisper_tasks.py's short_features; CTranslate2's encoder takes a
shorter input itself), against a whole 30 s window."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.realtime.decoding import FINAL, MARGIN_SECONDS, WINDOW, shortened
from service.audio import SAMPLE_RATE
from service.batching.job import FALLBACK_TEMPERATURES
from service.engines.base import DecodeOptions
from service.engines.openai_whisper_tasks import short_features
from service.settings import Settings, from_env
from tools import speech

from .test_partials import Queue, speaking


@given(samples=st.integers(1, WINDOW))
@settings(max_examples=500, deadline=None)
def test_a_shortened_input_holds_the_speech_a_margin_of_silence_and_whole_steps(samples):
    length = shortened(samples)
    assert length % (2 * SAMPLE_RATE) == 0 and 10 * SAMPLE_RATE <= length <= WINDOW
    assert length >= min(WINDOW, samples + MARGIN_SECONDS * SAMPLE_RATE)
    assert length - 2 * SAMPLE_RATE < max(10 * SAMPLE_RATE, samples + MARGIN_SECONDS * SAMPLE_RATE)


@pytest.fixture(scope="module")
def sentence(tmp_path_factory):
    clip = speech.sequence(tmp_path_factory.mktemp("one"), "one", [(0.3, 0, "en-us")], total=4.0)
    return speech.read_wav(clip.path)


def decodes(queue: Queue, audio: np.ndarray, env: dict | None = None):
    """The partial decode a session queues for a server_vad turn holding `audio`, then its final decode."""
    session = speaking(queue, audio)
    if env:
        session.decoder.settings = from_env({"VAD": "true", **env})
    session.tick()
    partial = session.speaking.partial
    session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
    return partial, session.decoding[0].final


@pytest.mark.parametrize("seconds", [0.6, 2.5, 7.3, 19.0, 27.5])
def test_on_a_cpu_a_turns_partial_and_final_decodes_are_in_a_shortened_input(sentence, seconds):
    audio = np.resize(sentence, round(seconds * SAMPLE_RATE))
    partial, final = decodes(Queue(gpu=False), audio)
    length = shortened(len(audio))
    for job in (partial, final):
        assert job.options.context_seconds == length / SAMPLE_RATE and len(job.audio) == length
        assert np.array_equal(job.audio[: len(audio)], audio) and not job.audio[len(audio) :].any()
        assert [w.seconds for w in job.windows] == [length / SAMPLE_RATE]
    assert final.live == FINAL and final.options.temperatures == FALLBACK_TEMPERATURES


@pytest.mark.parametrize(
    "where",
    ["a GPU: decodes share calls", "REALTIME_SHORT_INPUT=false", "an engine that does not shorten"],
)
def test_elsewhere_a_turn_is_decoded_in_a_whole_window(sentence, where):
    queue = Queue(gpu=where.startswith("a GPU"))
    queue.engine.shortens_context = where != "an engine that does not shorten"
    env = {"REALTIME_SHORT_INPUT": "false"} if where.startswith("REALTIME") else None
    for job in decodes(queue, sentence[: 2 * SAMPLE_RATE], env):
        assert job.options.context_seconds == 30.0 and len(job.audio) == WINDOW


def test_a_turn_the_client_commits_is_decoded_as_a_file_in_a_whole_window(sentence):
    """Without server_vad the server's VAD plans the windows, as for a file: never a shortened input."""
    session = speaking(Queue(gpu=False), sentence)
    session.speaking = None  # no turn detected: the client commits what it sent
    session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
    final = session.decoding[0].final
    assert final.options.context_seconds == 30.0 and len(final.audio) == len(sentence)


@pytest.fixture(scope="module")
def openai_engine(tiny_en):
    from service.engines.openai_whisper import OpenAIWhisperEngine

    engine = OpenAIWhisperEngine(Settings(whisper_model=str(tiny_en), whisper_device="cpu"))
    engine.load()
    return engine


@pytest.fixture(scope="module", params=["openai-whisper", "faster-whisper"])
def engine(request, tiny_en_ct2):
    """The real tiny.en on each engine (faster-whisper: the packaged CTranslate2 weights, int8 on a CPU)."""
    if request.param == "openai-whisper":
        return request.getfixturevalue("openai_engine")
    from service.engines.faster_whisper import FasterWhisperEngine

    settings = Settings(whisper_model=str(tiny_en_ct2), whisper_engine="faster-whisper", whisper_device="cpu")
    engine = FasterWhisperEngine(settings)
    engine.load()
    return engine


def test_the_shortened_encoder_is_upstreams_on_a_whole_window(openai_engine, sentence):
    engine = openai_engine
    mel = engine._mels([sentence])
    with torch.inference_mode():
        assert torch.allclose(short_features(engine.model, mel), engine.model.encoder(mel), atol=1e-5)


def test_a_turn_in_a_shortened_input_reads_as_in_a_whole_window(engine, tmp_path):
    """Prefixes of two stories, cut at seeded random points from 1 to 26 s (often mid-word, as a partial
    decode's audio), decoded (temperature 0, untimed) in the shortened input and in a whole window: the same
    words, within a word in ten over all of them, and no prefix reads longer (the loop tiny.en falls into
    when the input leaves no silence after the speech)."""
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


def test_a_final_decode_in_a_shortened_input_gives_each_tokens_logprob(engine, sentence):
    """include[]=logprobs on a turn's final decode: openai-whisper's teacher-forced scores need the
    shortened encoder too (its own asserts 30 s)."""
    (result,) = decode(engine, sentence, shortened(len(sentence)), logprobs=True)
    pairs = [pair for segment in result.segments for pair in segment.logprobs or ()]
    assert result.text and "".join(token for token, _ in pairs).strip() == result.text.strip()
    assert all(np.isfinite(lp) and lp <= 0 for _, lp in pairs)


def read(engine, audio: np.ndarray, length: int) -> str:
    return decode(engine, audio, length)[0].text


def decode(engine, audio: np.ndarray, length: int, **options):
    padded = np.concatenate([audio, np.zeros(length - len(audio), np.float32)])
    seconds = length / SAMPLE_RATE
    chosen = DecodeOptions(language="en", timestamps=False, context_seconds=seconds, **options)
    return engine.decode([padded], chosen)
