"""Issue 16's streams through the real server and the official `openai` client: every stream event validates
strictly as the client's own types and against OpenAI's published schemas, deltas come per finished segment,
and the verbose_json stream (an extension) carries the verbose_json transcript. Responses and fields:
test_openai_contract.py."""

from __future__ import annotations

import math

import openai
import pytest
from openai.types.audio import TranscriptionTextDeltaEvent, TranscriptionTextDoneEvent

from tests.api.contract import GREEDY, check_schema, check_type, error_of, post, stream


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
