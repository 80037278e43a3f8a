"""The OpenAI face through the real gunicorn server and the official `openai` client."""

from __future__ import annotations

import re

import openai
import pytest
import requests

from service.settings.choices import OPENAI_AUDIO_MODELS

SRT_CUE = re.compile(r"^\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n.+\n", re.M)


def test_json_is_text_and_duration_usage(client, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        result = client.audio.transcriptions.create(model="whisper-1", file=f)
    assert isinstance(result.text, str) and result.text
    assert result.usage.type == "duration"
    assert result.usage.seconds == 5  # espeak's clip is 4.x s; OpenAI rounds up


def test_text_format_is_plain_text(client, audio_dir):
    with open(audio_dir / "speech.mp3", "rb") as f:
        text = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
    assert isinstance(text, str) and text.strip() and not text.lstrip().startswith("{")


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitle_formats(client, audio_dir, fmt):
    with open(audio_dir / "speech.ogg", "rb") as f:
        body = client.audio.transcriptions.create(model="whisper-1", file=f, response_format=fmt)
    if fmt == "srt":
        assert SRT_CUE.match(body), body
    else:
        assert body.startswith("WEBVTT\n\n")
        assert re.search(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n", body)


def test_verbose_json_segments_and_words(client, audio_dir):
    with open(audio_dir / "speech.webm", "rb") as f:
        result = client.audio.transcriptions.create(
            model="whisper-1",
            file=f,
            response_format="verbose_json",
            language="en",
            timestamp_granularities=["word", "segment"],
        )
    assert result.language == "english"
    assert result.duration == pytest.approx(4.5, abs=1.0)
    assert result.segments and result.words
    for key in (
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    ):
        assert hasattr(result.segments[0], key)
    for word in result.words:
        assert 0 <= word.start <= word.end <= result.duration + 0.05


def test_verbose_json_without_words_has_no_words(service, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        body = requests.post(
            service.url + "/v1/audio/transcriptions",
            files={"file": f},
            data={"response_format": "verbose_json"},
        ).json()
    assert "segments" in body and "words" not in body
    assert body["task"] == "transcribe"


def test_translation(client, audio_dir):
    with open(audio_dir / "speech.mp4", "rb") as f:
        result = client.audio.translations.create(model="whisper-1", file=f, response_format="verbose_json")
    assert result.task == "translate" if hasattr(result, "task") else True
    assert isinstance(result.text, str)


def test_translation_json(client, audio_dir):
    with open(audio_dir / "speech.flac", "rb") as f:
        result = client.audio.translations.create(model="whisper-1", file=f)
    assert isinstance(result.text, str) and result.text


def test_loaded_model_name_is_accepted(client, audio_dir):
    with open(audio_dir / "speech.m4a", "rb") as f:
        result = client.audio.transcriptions.create(model="test", file=f, response_format="text")
    assert result.strip()


def test_models(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["test", *OPENAI_AUDIO_MODELS]
    assert client.models.retrieve("whisper-1").id == "whisper-1"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_bad_request_surfaces_as_bad_request_error(client, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f, pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model="whisper-1", file=f, language="xx")
    assert caught.value.body["param"] == "language"
    assert caught.value.body["type"] == "invalid_request_error"


def test_streaming_with_the_client(client, audio_dir):
    with open(audio_dir / "long.wav", "rb") as f:
        events = list(
            client.audio.transcriptions.create(model="whisper-1", file=f, stream=True, language="en")
        )
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and set(kinds[:-1]) == {"transcript.text.delta"}
    assert len(kinds) - 1 >= 3  # a delta per finished segment: at least one per window (75 s in 24-30 s)
    assert "".join(e.delta for e in events[:-1]).strip() == events[-1].text


def test_health_and_readiness(service):
    assert requests.get(service.url + "/healthz").json() == {"status": "ok"}
    ready = requests.get(service.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["model"] == "test"
