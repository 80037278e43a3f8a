"""What a response must be to count as OpenAI's: the official client's types, validated strictly, and the
schemas of OpenAI's published OpenAPI description (the subset in tests/data/openai_audio_schemas.json)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

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
