"""Issue 16 through the real server and the official `openai` client: every response validates strictly as
the client's own types and against OpenAI's published schemas; newer model names, include[]=logprobs,
chunking_strategy and keywords[] are honoured; what cannot be honoured is a 400. Streams:
test_openai_contract_streams.py."""

from __future__ import annotations

import math

import pytest
import requests
from openai.types import Model
from openai.types.audio import (
    Transcription,
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
    TranscriptionVerbose,
    Translation,
    TranslationVerbose,
)

from service.settings.choices import OPENAI_AUDIO_MODELS
from tests.api.contract import check_schema, check_type, error_of, post, raw_json, schema, stream


# -- responses -------------------------------------------------------------------------------------------
def test_transcription_json(client, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        body = raw_json(client.audio.transcriptions, model="whisper-1", file=f)
    check_type(Transcription, body)
    check_schema("CreateTranscriptionResponseJson", body)


def test_transcription_verbose_json_with_words_and_segments(client, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        body = raw_json(
            client.audio.transcriptions,
            model="whisper-1",
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
            language="en",
        )
    verbose = check_type(TranscriptionVerbose, body)
    check_schema("CreateTranscriptionResponseVerboseJson", body)
    assert verbose.segments and verbose.words and verbose.language == "english"


def test_translation_json_and_verbose_json_say_english(client, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        body = raw_json(client.audio.translations, model="whisper-1", file=f)
    check_type(Translation, body)
    check_schema("CreateTranslationResponseJson", body)
    with open(audio_dir / "speech.wav", "rb") as f:
        body = raw_json(
            client.audio.translations,
            model="whisper-1",
            file=f,
            response_format="verbose_json",
            extra_body={"language": "de"},
        )
    check_type(TranslationVerbose, body)
    check_schema("CreateTranslationResponseVerboseJson", body)
    assert body["language"] == "english"  # the output's language, as OpenAI documents, not the audio's


def test_models_list_and_retrieve(client, service):
    body = requests.get(service.url + "/v1/models", timeout=30).json()
    check_schema("ListModelsResponse", body)
    for item in body["data"]:
        check_type(Model, item)
    assert [m["id"] for m in body["data"]] == ["test", *OPENAI_AUDIO_MODELS]
    for name in OPENAI_AUDIO_MODELS:
        assert client.models.retrieve(name).id == name


@pytest.mark.parametrize(
    "model", ["gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-transcribe", "whisper-1"]
)
def test_newer_model_names_reach_the_loaded_model(client, audio_dir, model):
    with open(audio_dir / "speech.wav", "rb") as f:
        assert client.audio.transcriptions.create(model=model, file=f, response_format="text").strip()


def test_errors_are_in_the_published_error_shape(service):
    for resp in (post(service, model="gpt-9"), requests.get(service.url + "/v1/models/gpt-9", timeout=30)):
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "model_not_found", resp.text
        check_schema("ErrorResponse", resp.json())


# -- include[]=logprobs: the engine's token log-probabilities in OpenAI's shape ----------------------------
def assert_logprobs(items: list) -> None:
    assert items, "include[]=logprobs returned no log-probabilities"
    for item in items:
        assert isinstance(item["token"], str) and item["bytes"] == list(item["token"].encode())
        assert math.isfinite(item["logprob"]) and item["logprob"] <= 0


def test_logprobs_in_json(client, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        body = raw_json(client.audio.transcriptions, model="gpt-4o-transcribe", file=f, include=["logprobs"])
    check_type(Transcription, body)
    check_schema("CreateTranscriptionResponseJson", body)
    assert_logprobs(body["logprobs"])


def test_logprobs_in_stream_deltas(service, audio_dir):
    *deltas, done = stream(service, audio_dir / "speech.wav", **{"include[]": "logprobs"})
    for event in deltas:
        check_type(TranscriptionTextDeltaEvent, event)
        assert_logprobs(event["logprobs"])
    check_type(TranscriptionTextDoneEvent, done)
    assert_logprobs(done["logprobs"])


def test_logprobs_need_json(service, audio_dir):
    resp = post(service, audio=audio_dir / "speech.wav", response_format="srt", **{"include[]": "logprobs"})
    error_of(resp, "include[]")


# -- fields honoured, fields refused ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "strategy",
    ["auto", {"type": "server_vad", "threshold": 0.4, "prefix_padding_ms": 200, "silence_duration_ms": 600}],
)
def test_chunking_strategy_is_accepted(client, audio_dir, strategy):
    with open(audio_dir / "speech.wav", "rb") as f:
        result = client.audio.transcriptions.create(model="whisper-1", file=f, chunking_strategy=strategy)
    assert isinstance(result.text, str)


def test_chunking_strategy_as_json_text_and_out_of_range(service, audio_dir):
    ok = post(
        service, audio=audio_dir / "speech.wav", chunking_strategy='{"type": "server_vad", "threshold": 0.6}'
    )
    assert ok.status_code == 200, ok.text
    error_of(post(service, chunking_strategy='{"type": "server_vad", "threshold": 1.5}'), "chunking_strategy")
    error_of(post(service, chunking_strategy="semantic"), "chunking_strategy")


def test_keywords_and_languages_are_accepted(client, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        result = client.audio.transcriptions.create(
            model="gpt-transcribe", file=f, keywords=["Whisper", "fox"], languages=["en"]
        )
    assert isinstance(result.text, str)


@pytest.mark.parametrize(
    ("form", "param", "code"),
    [
        # known speakers without speaker labels asked for (diarized_json or diarize=true): tests/speakers
        ({"known_speaker_names[]": "agent"}, "known_speaker_names[]", None),
        ({"known_speaker_references[]": "data:audio/wav;base64,AAAA"}, "known_speaker_references[]", None),
        ({"speaker_count": "2"}, "speaker_count", "unsupported_parameter"),
        ({"languages[]": ["en", "de"]}, "languages[]", None),
    ],
)  # fmt: skip
def test_what_cannot_be_honoured_is_a_400(service, audio_dir, form, param, code):
    error = error_of(post(service, audio=audio_dir / "speech.wav", **form), param)
    assert error["code"] == code


def test_every_field_of_openais_request_is_declared_or_refused(service):
    """Drift against OpenAI: each field its published request schemas define is in our /openapi.json, or
    refused with a reason (never silently dropped)."""
    document = requests.get(service.url + "/openapi.json", timeout=30).json()
    for path, name in [
        ("/v1/audio/transcriptions", "CreateTranscriptionRequest"),
        ("/v1/audio/translations", "CreateTranslationRequest"),
    ]:
        ours = document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        declared = {key.removesuffix("[]") for key in ours["properties"]}
        for field in schema(name)["properties"]:
            if field not in declared:
                resp = requests.post(service.url + path, data={f"{field}[]": "x"}, timeout=30)
                assert resp.status_code == 400 and resp.json()["error"]["code"] == "unsupported_parameter", (
                    field
                )
