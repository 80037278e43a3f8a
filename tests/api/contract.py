"""What a response must be to count as OpenAI's: the official client's types, validated strictly, and the
schemas of OpenAI's published OpenAPI description (the subset in tests/data/openai_audio_schemas.json); and
the requests that tests/api/test_openai_contract*.py send to the real server to check it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import requests

# thresholds that never trigger the fallback ladder: greedy decoding, the same text every time
GREEDY = {"compression_ratio_threshold": "100", "logprob_threshold": "-100"}
OPENAI_SCHEMAS = json.loads((Path(__file__).parents[1] / "data" / "openai_audio_schemas.json").read_text())


def schema(name: str) -> dict:
    return OPENAI_SCHEMAS["components"]["schemas"][name]


def check_schema(name: str, body: object) -> None:
    """Validate `body` against OpenAI's schema `name` (draft 2020-12, as OpenAPI 3.1 uses)."""
    root = {**OPENAI_SCHEMAS, "$ref": f"#/components/schemas/{name}"}
    jsonschema.Draft202012Validator(root).validate(body)


def check_type(model, body: dict):
    """Strict validation by one of the `openai` client's pydantic types: no coercion of any field."""
    return model.model_validate(body, strict=True)


def sse_events(text: str) -> list[dict]:
    """The JSON payloads of a text/event-stream body."""
    return [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")]


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


def stream(service, audio, **form) -> list[dict]:
    resp = post(service, audio=audio, stream="true", **form)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream"), resp.text
    return sse_events(resp.text)
