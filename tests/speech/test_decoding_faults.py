"""Issue 27's faults found by trying, on the real model (tiny.en), through the real server on each engine.

- With VAD off, three sentences 20 s apart: the silence after a window's last sentence was decoded again and
  the model invented words in it (' you', ' ...'), and a sentence after such a silence could be stamped 20 s
  early; transcribe() on the same weights puts every sentence where it is.
- A prompt at the documented limit made the model loop ('word word ...') for its whole token limit at every
  temperature of the fallback ladder: 107 s of model time for a 2.8 s clip, then a 504.
"""

from __future__ import annotations

import pytest
import requests

from service.engines import create_engine
from service.engines.base import DecodeOptions, Thresholds
from service.engines.looping import token_budget
from service.settings import Settings
from tests.speech.conftest import transcribe
from tools import speech
from tools.speech import read_wav, write_wav

ONSETS = (5.0, 25.0, 45.0)
LOOPING_PROMPT = ("word " * 800)[:4000]  # PROMPT_MAX_CHARS


@pytest.fixture(scope="module")
def spaced_three(tmp_path_factory) -> tuple[speech.Clip, list[float]]:
    """Three sentences 20 s apart in silence, and how long each is."""
    d = tmp_path_factory.mktemp("faults")
    parts = [(onset, i, speech.VOICES[0]) for i, onset in enumerate(ONSETS)]
    lengths = [len(read_wav(speech.clip(d, i, voice).path)) / speech.SAMPLE_RATE for _, i, voice in parts]
    return speech.sequence(d, "three-20s-apart", parts), lengths


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> speech.Clip:
    """The first 2.8 s of a sentence."""
    d = tmp_path_factory.mktemp("short")
    source = speech.clip(d, 0, speech.VOICES[0])
    return speech.Clip(
        write_wav(d / "short.wav", read_wav(source.path)[: int(2.8 * speech.SAMPLE_RATE)]),
        source.text,
        source.onsets,
    )


def test_without_vad_every_word_is_where_a_sentence_is(real_service, spaced_three):
    clip, lengths = spaced_three
    with open(clip.path, "rb") as f:
        response = requests.post(
            real_service.url + "/asr",
            params={"output": "json", "language": "en", "vad_filter": "false", "word_timestamps": "true"},
            files={"audio_file": f},
            timeout=900,
        )
    assert response.status_code == 200, response.text
    segments = response.json()["segments"]
    spans = [(onset - 1.0, onset + length + 0.5) for onset, length in zip(ONSETS, lengths)]
    for segment in segments:  # a word may end late (alignment stretches the last one), never start in silence
        for word in segment["words"]:
            assert any(a <= word["start"] <= b for a, b in spans), (word, segments)
    for onset, sentence in zip(ONSETS, speech.SENTENCES):
        near = [s for s in segments if abs(s["start"] - onset) <= 1.0]
        assert near, f"no segment starts within 1 s of {onset} s: {segments}"
        said = " ".join(s["text"] for s in segments if onset - 1.0 <= s["start"] < onset + 19)
        assert speech.wer(sentence, said) < 0.5, (sentence, said)


def test_a_prompt_the_model_loops_on_is_answered_within_its_token_budget(real_service, short_clip):
    # A 504 after 123 s in the issue; on 2 quiet cores, 23.8 s before the fix and 5.5 s after. What fails
    # before the fix whatever the machine's speed is the token count below (no bound on seconds: issue #30).
    response = transcribe(real_service, short_clip, language="en", prompt=LOOPING_PROMPT)
    assert response.status_code == 200, response.text
    for segment in response.json()["segments"]:
        assert len(segment["tokens"]) <= token_budget(2.8, 224)


@pytest.fixture(scope="module", params=["openai-whisper", "faster-whisper"])
def real_engine(request, tiny_en, tiny_en_ct2):
    model = tiny_en if request.param == "openai-whisper" else tiny_en_ct2
    settings = Settings(
        whisper_model=str(model),
        whisper_engine=request.param,
        whisper_device="cpu",
        whisper_compute_type="float32",
    )
    engine = create_engine(settings)
    engine.load()
    return engine


def test_a_looping_decode_stops_at_the_loop_and_is_rejected_as_too_repetitive(real_engine, short_clip):
    audio = read_wav(short_clip.path)
    (result,) = real_engine.decode([audio], DecodeOptions(language="en", prompt=LOOPING_PROMPT))
    assert result.text.startswith("word word word")  # tiny.en loops on this prompt at temperature 0 ...
    assert len(result.tokens) <= token_budget(2.8, 224)  # ... and used to sample 224 tokens of it
    assert result.looped and result.needs_fallback(Thresholds())  # by its compression ratio
