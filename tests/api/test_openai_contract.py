"""Issue 16 through the real server and the official `openai` client: every response and stream event
validates strictly as the client's own types and against OpenAI's published schemas; newer model names,
include[]=logprobs, chunking_strategy and keywords[] are honoured; what cannot be honoured is a 400."""

from __future__ import annotations

import json
import math

import openai
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
from tests.api.contract import check_schema, check_type, schema, sse_events

# thresholds that never trigger the fallback ladder: greedy decoding, the same text every time
GREEDY = {"compression_ratio_threshold": "100", "logprob_threshold": "-100"}


@pytest.fixture(scope="module")
def client(service):
    return openai.OpenAI(base_url=service.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def raw_json(call, **kwargs) -> dict:
    resp = call.with_raw_response.create(**kwargs)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    return json.loads(resp.text)


def post(service, path="/v1/audio/transcriptions", audio=None, **form) -> requests.Response:
    files = {"file": ("speech.wav", audio.read_bytes())} if audio else None
    return requests.post(service.url + path, data=form, files=files, timeout=120)


def error_of(resp: requests.Response, param: str) -> dict:
    assert resp.status_code == 400, resp.text
    check_schema("ErrorResponse", resp.json())
    assert resp.json()["error"]["param"] == param, resp.text
    return resp.json()["error"]


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
    error_of(post(service, model="gpt-9"), "model")
    resp = requests.get(service.url + "/v1/models/gpt-9", timeout=30)
    assert resp.status_code == 404
    check_schema("ErrorResponse", resp.json())


# -- streaming -------------------------------------------------------------------------------------------
def stream(service, audio, **form) -> list[dict]:
    resp = post(service, audio=audio, stream="true", **form)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream"), resp.text
    return sse_events(resp.text)


def test_stream_events_validate_strictly(service, audio_dir):
    events = stream(service, audio_dir / "long.wav", language="en")
    *deltas, done = events
    assert deltas and done["type"] == "transcript.text.done"
    for event in deltas:
        check_type(TranscriptionTextDeltaEvent, event)
        check_schema("TranscriptTextDeltaEvent", event)
        check_schema("CreateTranscriptionResponseStreamEvent", event)
    check_type(TranscriptionTextDoneEvent, done)  # usage of type "tokens": the only one this type accepts
    check_schema("TranscriptTextDoneEvent", done)
    assert done["usage"]["output_tokens"] >= 0 and done["usage"]["input_tokens"] == math.ceil(75 * 50)
    assert "".join(e["delta"] for e in deltas).strip() == done["text"]


def test_stream_with_the_client(client, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        events = list(client.audio.transcriptions.create(model="gpt-4o-transcribe", file=f, stream=True))
    assert isinstance(events[-1], TranscriptionTextDoneEvent)
    assert all(isinstance(e, TranscriptionTextDeltaEvent) for e in events[:-1])


def test_a_delta_per_finished_segment(service, audio_dir):
    """A timed stream (verbose_json) sends each segment as it is known, not one delta per 30 s window; an
    untimed one (json) has one segment per window, decoded without timestamp tokens, and its deltas make up
    the json response's text."""
    long = audio_dir / "long.wav"
    verbose = post(service, audio=long, response_format="verbose_json", language="en", **GREEDY)
    segments = [s["text"] for s in verbose.json()["segments"]]
    timed = stream(service, long, response_format="verbose_json", language="en", **GREEDY)[:-1]
    assert [e["delta"] for e in timed] == segments and len(segments) >= 3  # 75 s: 3 windows
    beam = {"beam_size": "5", **GREEDY}  # untimed decoding is beam search's (greedy json stays timed)
    plain = post(service, audio=long, language="en", **beam).json()["text"]
    *untimed, done = stream(service, long, language="en", **beam)
    assert len(untimed) == 3 and done["text"] == plain == "".join(e["delta"] for e in untimed).strip()


def check_stream_types(events: list[dict]) -> None:
    """Each event strictly as the client's own type and OpenAI's published schemas: the extension's extra
    fields are allowed by both (the client's models keep unknown fields; the schemas do not forbid them)."""
    *deltas, done = events
    for event in deltas:
        check_type(TranscriptionTextDeltaEvent, event)
        check_schema("TranscriptTextDeltaEvent", event)
        check_schema("CreateTranscriptionResponseStreamEvent", event)
    check_type(TranscriptionTextDoneEvent, done)
    check_schema("TranscriptTextDoneEvent", done)
    check_schema("CreateTranscriptionResponseStreamEvent", done)


def rounded(segments: list[dict]) -> list[dict]:
    return [{k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()} for s in segments]


def test_a_verbose_json_stream_carries_the_verbose_json_transcript(service, audio_dir):
    """The extension: one decode gives the live text and everything verbose_json holds but its usage."""
    verbose = post(
        service, audio=audio_dir / "long.wav", response_format="verbose_json", language="en", **GREEDY
    ).json()
    events = stream(service, audio_dir / "long.wav", response_format="verbose_json", language="en", **GREEDY)
    check_stream_types(events)
    *deltas, done = events
    # a stream's first window is decoded alone (work.take_batch), the rest in other batches than the plain
    # request's: float statistics may differ in their last digits between batch shapes
    expected = rounded(verbose["segments"])
    assert rounded([e["segment"] for e in deltas]) == expected == rounded(done["segments"])
    assert [e["delta"] for e in deltas] == [s["text"] for s in verbose["segments"]]
    assert {k: done[k] for k in ("task", "language", "duration", "text")} == {
        "task": "transcribe",
        "language": "english",
        "duration": verbose["duration"],
        "text": verbose["text"],
    }
    assert done["usage"]["type"] == "tokens" and "words" not in done
    assert all(set(e) == {"type", "delta", "segment"} for e in deltas)


def test_a_verbose_json_stream_with_words(service, audio_dir):
    form = {"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"], **GREEDY}
    verbose = post(service, audio=audio_dir / "speech.wav", **form).json()
    events = stream(service, audio_dir / "speech.wav", **form)
    check_stream_types(events)
    *deltas, done = events
    assert done["words"] == verbose["words"] and done["segments"] == verbose["segments"]
    assert [w for e in deltas for w in e["words"]] == verbose["words"]
    words_only = stream(service, audio_dir / "speech.wav", **{**form, "timestamp_granularities[]": "word"})
    assert "segments" not in words_only[-1] and all("segment" not in e for e in words_only[:-1])


def test_json_and_text_streams_carry_no_extension_fields(service, audio_dir):
    for fmt in ("json", "text"):
        *deltas, done = stream(service, audio_dir / "speech.wav", response_format=fmt)
        assert all(set(e) == {"type", "delta"} for e in deltas)
        assert set(done) == {"type", "text", "usage"}


@pytest.mark.parametrize("response_format", [None, "json", "text", "verbose_json"])
def test_the_client_iterates_every_stream_with_strict_validation(service, audio_dir, response_format):
    """The official client, validating each event against its types (not just constructing them), reads
    a stream with and without the extension's fields, and gives them to the caller."""
    client = openai.OpenAI(
        base_url=service.url + "/v1",
        api_key="unused",
        max_retries=0,
        timeout=120,
        _strict_response_validation=True,
    )
    extra = {"response_format": response_format} if response_format else {}
    with open(audio_dir / "speech.wav", "rb") as f:
        call = client.audio.transcriptions.create
        events = list(call(model="whisper-1", file=f, stream=True, language="en", **extra))
    *deltas, done = events
    assert isinstance(done, TranscriptionTextDoneEvent) and done.text
    assert deltas and all(isinstance(e, TranscriptionTextDeltaEvent) for e in deltas)
    assert "".join(e.delta for e in deltas).strip() == done.text
    if response_format == "verbose_json":
        assert done.language == "english" and done.duration > 4 and done.task == "transcribe"
        assert [e.segment["text"] for e in deltas] == [s["text"] for s in done.segments]
    else:
        assert not done.model_extra and not any(e.model_extra for e in deltas)


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_formats_that_cannot_stream_are_refused(service, audio_dir, fmt):
    error = error_of(
        post(service, audio=audio_dir / "speech.wav", stream="true", response_format=fmt), "response_format"
    )
    assert error["code"] == "unsupported_value"


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
