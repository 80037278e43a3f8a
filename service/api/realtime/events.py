"""OpenAI's Realtime events as this service reads and writes them.

Client events are typed (pydantic) and parsed from one JSON frame; a frame that is not JSON, not an object,
of an unknown type or with a bad field raises `EventError`, which the session answers with an `error` event
naming it (the session goes on). Server events are built by `server_event()`, each with a fresh event_id.
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class EventError(Exception):
    """A client event this session cannot act on; `code` and `param` go into the `error` event."""

    def __init__(self, message: str, code: str, param: str | None = None, event_id: str | None = None):
        super().__init__(message)
        self.message, self.code, self.param, self.event_id = message, code, param, event_id


class ClientEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event_id: str | None = None


class SessionUpdate(ClientEvent):
    type: Literal["session.update", "transcription_session.update"]  # the second is the beta's name
    session: dict[str, Any]


class Append(ClientEvent):
    type: Literal["input_audio_buffer.append"]
    audio: str  # base64


class Commit(ClientEvent):
    type: Literal["input_audio_buffer.commit"]


class Clear(ClientEvent):
    type: Literal["input_audio_buffer.clear"]


Event = Annotated[SessionUpdate | Append | Commit | Clear, Field(discriminator="type")]
EVENT = TypeAdapter(Event)
KNOWN = (
    "session.update",
    "transcription_session.update",
    *(f"input_audio_buffer.{v}" for v in ("append", "commit", "clear")),
)


def parse(frame: str | bytes) -> Event:
    """One WebSocket frame -> a client event; EventError naming what is wrong."""
    try:
        data = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as error:
        raise EventError(f"The event is not valid JSON: {error}.", "invalid_json") from None
    except RecursionError:  # '[' * 200000: nested deeper than the parser goes
        raise EventError("The event is not valid JSON: nested too deeply.", "invalid_json") from None
    if not isinstance(data, dict):
        raise EventError("The event must be a JSON object with a 'type'.", "invalid_event")
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    kind = data.get("type")
    if kind not in KNOWN:
        raise EventError(
            f"Unknown event type {kind!r}: a transcription session takes {', '.join(KNOWN)}.",
            "unknown_event",
            "type",
            event_id,
        )
    try:
        return EVENT.validate_python(data)
    except ValidationError as error:
        raise invalid(error, event_id) from None


def invalid(error: ValidationError, event_id: str | None, prefix: str = "") -> EventError:
    """pydantic's first complaint as an EventError whose param is the field's dotted path."""
    first = error.errors()[0]
    loc = [str(p) for p in first["loc"]]
    path = ".".join(loc[1:] if loc and loc[0] in KNOWN else loc)
    param = f"{prefix}{path}" if path else prefix.rstrip(".") or None
    return EventError(f"Invalid value for '{param}': {first['msg']}.", "invalid_value", param, event_id)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def server_event(kind: str, **fields: Any) -> dict:
    return {"type": kind, "event_id": new_id("event"), **fields}


def error_event(error: EventError) -> dict:
    body = {"type": "invalid_request_error", "code": error.code, "message": error.message}
    body.update(param=error.param, event_id=error.event_id)
    return server_event("error", error=body)
