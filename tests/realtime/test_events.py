"""Client events and session.update in OpenAI's GA and beta shapes (api/realtime/events.py, config.py):
what is accepted, and the error each bad frame gets."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from service.api.realtime import events
from service.api.realtime.config import ServerVad, SessionConfig

GA = {
    "type": "transcription",
    "audio": {
        "input": {
            "format": {"type": "audio/pcmu"},
            "transcription": {"model": "whisper-1", "language": "German", "prompt": "Namen"},
            "turn_detection": None,
        }
    },
    "include": ["item.input_audio_transcription.logprobs"],
}
BETA = {
    "input_audio_format": "g711_alaw",
    "input_audio_transcription": {"model": "whisper-1", "language": "de-DE"},
    "turn_detection": {"type": "server_vad", "silence_duration_ms": 800},
}


def test_the_ga_shape_sets_format_language_turns_and_logprobs():
    config = SessionConfig().updated(GA)
    assert (config.format, config.transcription.language, config.transcription.prompt) == (
        "g711_ulaw",
        "de",
        "Namen",
    )
    assert config.turn_detection is None and config.logprobs
    shown = config.ga("sess_1")["audio"]["input"]
    assert shown["format"] == {"type": "audio/pcmu"} and shown["turn_detection"] is None


def test_the_beta_shape_is_accepted_too():
    config = SessionConfig().updated(BETA)
    assert (config.format, config.transcription.language) == ("g711_alaw", "de")
    assert config.turn_detection == ServerVad(silence_duration_ms=800)


def test_an_update_keeps_what_it_leaves_out():
    config = SessionConfig().updated(GA).updated({"type": "transcription", "include": []})
    assert config.format == "g711_ulaw" and config.turn_detection is None and not config.logprobs


@pytest.mark.parametrize(
    ("session", "param"),
    [
        (
            {"type": "transcription", "audio": {"input": {"format": {"type": "audio/mp3"}}}},
            "audio.input.format.type",
        ),
        ({"input_audio_format": "opus"}, "input_audio_format"),
        ({"type": "transcription", "audio": {"input": {"transcription": {"language": "xx-klingon"}}}}, None),
        ({"turn_detection": {"type": "server_vad", "threshold": 2}}, "turn_detection.threshold"),
        ({"input_audio_transcription": {"prompt": "x" * 4001}}, "input_audio_transcription.prompt"),
    ],
)
def test_a_bad_session_names_the_field(session, param):
    with pytest.raises(ValidationError) as caught:
        SessionConfig().updated(session)
    error = events.invalid(caught.value, "evt_1", "session.")
    assert error.code == "invalid_value" and error.event_id == "evt_1"
    assert error.param.startswith("session.") and (param is None or error.param == f"session.{param}")


@pytest.mark.parametrize(
    ("frame", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ("[" * 200_000, "invalid_json", None),  # nested deeper than the parser goes: RecursionError
        ("[1, 2]", "invalid_event", None),
        (json.dumps({"type": "response.create", "event_id": "e1"}), "unknown_event", "type"),
        (json.dumps({"type": "input_audio_buffer.append"}), "invalid_value", "audio"),
        (json.dumps({"type": "session.update", "session": "pcm16"}), "invalid_value", "session"),
    ],
)
def test_a_bad_frame_gets_an_error_naming_it(frame, code, param):
    with pytest.raises(events.EventError) as caught:
        events.parse(frame)
    assert (caught.value.code, caught.value.param) == (code, param)
    event = events.error_event(caught.value)
    assert (
        event["type"] == "error" and event["error"]["code"] == code and event["event_id"].startswith("event_")
    )


def test_good_frames_parse_to_their_events():
    assert isinstance(events.parse('{"type": "input_audio_buffer.commit"}'), events.Commit)
    assert events.parse(b'{"type": "input_audio_buffer.append", "audio": "AAA="}').audio == "AAA="
    assert events.parse('{"type": "transcription_session.update", "session": {}}').type.startswith("transc")


def test_a_client_far_ahead_of_the_session_is_closed_before_its_frames_pile_up():
    """simple-websocket's reader queues every frame it reads (`input_buffer`, no bound): past
    MAX_BACKLOG_BYTES unread, the session ends with a reason instead of growing without limit."""
    from types import SimpleNamespace

    from service.api.realtime import MAX_BACKLOG_BYTES, Connection
    from service.settings import from_env

    ws = SimpleNamespace(input_buffer=["x" * 1024] * 8)  # the reader's list, as simple-websocket keeps it
    connection = Connection(ws, None, from_env({}))
    now = connection.opened
    assert connection._limit_reached(now) is None
    ws.input_buffer = ["x" * (1 << 20)] * ((MAX_BACKLOG_BYTES >> 20) + 1)
    assert "MiB more than the session has taken in" in connection._limit_reached(now)
