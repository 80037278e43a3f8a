"""Bad speaker requests get OpenAI's answer: 400 naming the field, decided before the upload reaches the
model (each refusal of issue 33 has a case here)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import requests
from werkzeug.datastructures import MultiDict

from service.api import fields, speaker_fields
from service.api.openai_fields import TranscriptionForm
from service.errors import InvalidRequest
from service.intake.ffmpeg import Decoder
from tools import speech

DIARIZED = [("response_format", "diarized_json")]
WAV_URL = "data:audio/wav;base64,"
TEXT_URL = "data:text/plain;base64,AA=="


def refused(*pairs) -> dict:
    with pytest.raises(InvalidRequest) as caught:
        fields.parse(
            TranscriptionForm, MultiDict(pairs), {"models": ["tiny.en", "gpt-4o-transcribe-diarize"]}
        )
    return caught.value.body()["error"]


def decoder(tmp_path) -> Decoder:
    """The worker's decoder as the service makes it: one slot here, the default 3 h limit, 30 s timeout."""
    return Decoder(1, 3 * 3600, 30, str(tmp_path))


def clip_url(path) -> str:
    return WAV_URL + base64.b64encode(path.read_bytes()).decode()


@pytest.mark.parametrize(
    ("pairs", "param"),
    [
        (DIARIZED + [("prompt", "a meeting")], "prompt"),
        (DIARIZED + [("timestamp_granularities[]", "word")], "timestamp_granularities[]"),
        (DIARIZED + [("include[]", "logprobs")], "include[]"),
        ([("model", "gpt-4o-transcribe-diarize"), ("response_format", "srt")], "response_format"),
        ([("model", "gpt-4o-transcribe-diarize"), ("prompt", "hello")], "prompt"),
        (DIARIZED + [("known_speaker_names[]", "ann")], "known_speaker_references[]"),
        (DIARIZED + [("known_speaker_references[]", WAV_URL + "AAAA")], "known_speaker_names[]"),
        (DIARIZED + [("known_speaker_names[]", n) for n in "abcde"]
         + [("known_speaker_references[]", WAV_URL + "AAAA")] * 5, "known_speaker_names[]"),
        (DIARIZED + [("known_speaker_names[]", n) for n in "abcd"]
         + [("known_speaker_references[]", WAV_URL + "AAAA")] * 5, "known_speaker_references[]"),
        (DIARIZED + [("known_speaker_names[]", "x" * 65), ("known_speaker_references[]", WAV_URL)],
         "known_speaker_names[]"),
        (DIARIZED + [("known_speaker_names[]", "a"), ("known_speaker_references[]", "https://x/a.wav")],
         "known_speaker_references[]"),
        (DIARIZED + [("known_speaker_names[]", "a"), ("known_speaker_references[]", TEXT_URL)],
         "known_speaker_references[]"),
        (DIARIZED + [("known_speaker_names[]", "a"), ("known_speaker_references[]", WAV_URL + "%%%")],
         "known_speaker_references[]"),
        (DIARIZED + [("known_speaker_names[]", "a")] * 2 + [("known_speaker_references[]", WAV_URL)] * 2,
         "known_speaker_names[]"),  # the same name twice
        ([("known_speaker_names[]", "a"), ("known_speaker_references[]", WAV_URL)], "known_speaker_names[]"),
        ([("min_speakers", "2")], "min_speakers"),
        (DIARIZED + [("min_speakers", "3"), ("max_speakers", "2")], "min_speakers"),
        (DIARIZED + [("max_speakers", "0")], "max_speakers"),
        ([("response_format", "diarized_json"), ("diarize", "perhaps")], "diarize"),
    ],
)  # fmt: skip
def test_refusals_name_the_field(pairs, param):
    assert refused(*pairs)["param"] == param


def test_translations_have_no_speakers():
    from service.api.openai_fields import TranslationForm

    with pytest.raises(InvalidRequest) as caught:
        fields.parse(TranslationForm, MultiDict(DIARIZED))
    assert caught.value.param == "response_format"


@pytest.mark.parametrize(
    ("seconds", "ok"), [(1.0, False), (2.5, True), (9.5, True), (12.0, False), (30.0, False)]
)
def test_a_reference_must_be_2_to_10_seconds_of_audio(tmp_path, seconds, ok):
    voice = speech.read_wav(speech.clip(tmp_path, 0).path)
    path = speech.write_wav(tmp_path / "ref.wav", np.resize(voice, int(seconds * speech.SAMPLE_RATE)))
    pairs = DIARIZED + [("known_speaker_names[]", "a"), ("known_speaker_references[]", clip_url(path))]
    form = fields.parse(TranscriptionForm, MultiDict(pairs))
    if ok:
        assert speaker_fields.reference_voices(form, decoder(tmp_path))["a"].shape == (256,)
    else:
        with pytest.raises(InvalidRequest) as caught:
            speaker_fields.reference_voices(form, decoder(tmp_path))
        assert caught.value.param == "known_speaker_references[]", caught.value.message


def test_a_reference_that_is_not_audio_is_refused(tmp_path):
    url = "data:audio/wav;base64," + base64.b64encode(b"RIFF not really a wave file" * 40).decode()
    form = fields.parse(
        TranscriptionForm,
        MultiDict(DIARIZED + [("known_speaker_names[]", "a"), ("known_speaker_references[]", url)]),
    )
    with pytest.raises(InvalidRequest) as caught:
        speaker_fields.reference_voices(form, decoder(tmp_path))
    assert caught.value.param == "known_speaker_references[]"


def decoded(service) -> float:
    return service.metric("whisper_stage_duration_seconds_count", stage="audio_decode")


def inferred(service) -> float:
    return service.metric("whisper_stage_duration_seconds_count", stage="inference")


def test_refused_requests_never_reach_the_model(service, audio_dir):
    """Through the real server: field refusals come before the upload is decoded, the length rule (over
    30 s needs chunking_strategy) before it is queued."""
    before = (decoded(service), inferred(service))
    for form in (
        {"response_format": "diarized_json", "prompt": "x"},
        {
            "response_format": "diarized_json",
            "known_speaker_names[]": "a",
            "known_speaker_references[]": "nope",
        },
    ):
        with open(audio_dir / "speech.wav", "rb") as f:
            resp = requests.post(
                service.url + "/v1/audio/transcriptions", data=form, files={"file": f}, timeout=60
            )
        assert resp.status_code == 400 and resp.json()["error"]["param"], resp.text
    assert (decoded(service), inferred(service)) == before
    with open(audio_dir / "long.wav", "rb") as f:  # 75 s
        form = {"response_format": "diarized_json"}
        resp = requests.post(
            service.url + "/v1/audio/transcriptions", data=form, files={"file": f}, timeout=60
        )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "chunking_strategy", resp.text
    assert inferred(service) == before[1]


@pytest.mark.parametrize("amplitude", [0.0, 1e-5])
def test_a_silent_reference_is_refused_naming_the_field(tmp_path, amplitude):
    """Digital silence made resemblyzer's gain infinite (NaN audio, a 500); it holds no voice: 400."""
    path = speech.write_wav(tmp_path / "quiet.wav", np.full(3 * speech.SAMPLE_RATE, amplitude, np.float32))
    pairs = DIARIZED + [("known_speaker_names[]", "a"), ("known_speaker_references[]", clip_url(path))]
    form = fields.parse(TranscriptionForm, MultiDict(pairs))
    with pytest.raises(InvalidRequest) as caught:
        speaker_fields.reference_voices(form, decoder(tmp_path))
    assert caught.value.param == "known_speaker_references[]" and "silent" in caught.value.message
