"""The OpenAPI 3 description of what the service really accepts, served at GET /openapi.json.

Every request field comes from its one declaration in openai_fields.py or asr_fields.py (the models that
validate the requests), so the document and the server cannot drift apart; tests/api check that each
declared limit is enforced, and tests/reliability fuzz the server with schemathesis against this document.
"""

from __future__ import annotations

import copy

from flask import current_app
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from .. import __version__
from . import asr_fields, openai_fields, openapi_jobs
from .openai import model_ids
from .openapi_responses import SCHEMAS, errors, json_content


# -- request schemas, derived from the field declarations ------------------------------------------------
class _FormSchema(GenerateJsonSchema):
    """Form fields are absent rather than null; titles add nothing to a described field."""

    def nullable_schema(self, schema):
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema):
        out = super().default_schema(schema)
        if out.get("default") is None:
            out.pop("default", None)
        return out

    def field_title_should_be_set(self, schema) -> bool:
        return False


def _schema(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema(by_alias=True, schema_generator=_FormSchema)
    return _inline(schema, schema.pop("$defs", {}))


def _inline(node, defs: dict):
    """Replace $ref with the definition itself: the form schemas are embedded in the document."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].split("/")[-1]], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def form_schema(model: type[BaseModel], files: dict[str, str]) -> dict:
    """A multipart/form-data schema: the model's fields plus the required file parts."""
    schema = _schema(model)
    properties = {
        name: {"type": "string", "format": "binary", "description": text} for name, text in files.items()
    }
    properties.update(schema["properties"])
    return {
        "type": "object",
        "required": list(files),
        "properties": properties,
        "additionalProperties": False,
    }


def query_parameters(model: type[BaseModel]) -> list[dict]:
    """OpenAPI query parameters, one per field, each with its schema and description."""
    out = []
    for name, schema in _schema(model)["properties"].items():
        description = schema.pop("description", "")
        out.append(
            {"name": name, "in": "query", "required": False, "description": description, "schema": schema}
        )
    return out


# -- the OpenAI face: multipart form fields --------------------------------------------------------------
FORMS = {"transcribe": openai_fields.TranscriptionForm, "translate": openai_fields.TranslationForm}


def _openai_operation(task: str, summary: str) -> dict:
    form = form_schema(FORMS[task], {"file": "Audio in any format ffmpeg reads."})
    return {
        "summary": summary,
        "operationId": f"{task}Audio",
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form}}},
        "responses": {
            "200": {
                "description": "The transcript in the requested response_format.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Transcription"}},
                    "text/plain": {"schema": {"type": "string"}},
                    "application/x-subrip": {"schema": {"type": "string"}},
                    "text/vtt": {"schema": {"type": "string"}},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            },
            **openapi_jobs.ACCEPTED,
            **errors("400", "401", "413", "429", "500", "503", "504", "507"),
        },
    }


# -- the whisper-asr-webservice face: query parameters + multipart audio_file ----------------------------
def _asr_upload() -> dict:
    form = {
        "type": "object",
        "required": ["audio_file"],
        "properties": {"audio_file": {"type": "string", "format": "binary"}},
    }
    return {"required": True, "content": {"multipart/form-data": {"schema": form}}}


def _asr_operation() -> dict:
    return {
        "summary": "Transcribe or translate (whisper-asr-webservice compatible).",
        "operationId": "asr",
        "parameters": query_parameters(asr_fields.AsrQuery),
        "requestBody": _asr_upload(),
        "responses": {
            "200": {
                "description": "The transcript as the requested output.",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/plain": {"schema": {"type": "string"}},
                    "application/x-subrip": {"schema": {"type": "string"}},
                    "text/vtt": {"schema": {"type": "string"}},
                    "text/tab-separated-values": {"schema": {"type": "string"}},
                },
            },
            **openapi_jobs.ACCEPTED,
            **errors("400", "401", "413", "429", "500", "503", "504", "507"),
        },
    }


def _detect_operation() -> dict:
    detected = {
        "type": "object",
        "required": ["detected_language", "language_code", "confidence"],
        "properties": {
            "detected_language": {"type": "string"},
            "language_code": {"type": "string"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
    }
    return {
        "summary": "Detect the spoken language (whisper-asr-webservice compatible).",
        "operationId": "detectLanguage",
        "parameters": query_parameters(asr_fields.DetectQuery),
        "requestBody": _asr_upload(),
        "responses": {
            "200": {"description": "The language.", "content": {"application/json": {"schema": detected}}},
            **errors("400", "401", "413", "429", "500", "503", "504", "507"),
        },
    }


# -- models, probes ----------------------------------------------------------------------------------------
def _models_operations() -> tuple[dict, dict]:
    listing = {
        "summary": "The served model and its aliases (MODEL_ALIASES).",
        "operationId": "listModels",
        "responses": {
            "200": {
                "description": "Models.",
                "content": json_content({"$ref": "#/components/schemas/ModelList"}),
            },
            **errors("401", "500"),
        },
    }
    one = {
        "summary": "One model.",
        "operationId": "getModel",
        "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {
            "200": {
                "description": "The model.",
                "content": json_content({"$ref": "#/components/schemas/Model"}),
            },
            **errors("401", "404", "500"),
        },
    }
    return listing, one


def _probe(summary: str, operation_id: str, statuses: dict) -> dict:
    return {"summary": summary, "operationId": operation_id, "security": [], "responses": statuses}


def _probes() -> dict:
    status = json_content(
        {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
    )
    return {
        "/healthz": {
            "get": _probe("Liveness.", "healthz", {"200": {"description": "Alive.", "content": status}})
        },
        "/readyz": {
            "get": _probe(
                "Readiness: 200 once the model is loaded and warm.",
                "readyz",
                {"200": {"description": "Ready.", "content": status}, **errors("503")},
            )
        },
        "/openapi.json": {
            "get": _probe(
                "This document.",
                "openapi",
                {"200": {"description": "OpenAPI 3.", "content": json_content({})}},
            )
        },
    }


def document() -> dict:
    """The whole OpenAPI 3.1 document."""
    listing, one = _models_operations()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Whisper GPU service",
            "version": __version__,
            "description": "OpenAI-compatible speech-to-text, and whisper-asr-webservice's /asr.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"basic": []}],
        "paths": {
            "/v1/audio/transcriptions": {"post": _openai_operation("transcribe", "Transcribe audio.")},
            "/v1/audio/translations": {"post": _openai_operation("translate", "Translate audio to English.")},
            "/v1/models": {"get": listing},
            "/v1/models/{model_id}": {"get": one},
            "/asr": {"post": _asr_operation()},
            "/detect-language": {"post": _detect_operation()},
            **openapi_jobs.paths(),
            **_probes(),
        },
        "components": {
            "schemas": copy.deepcopy({**SCHEMAS, **openapi_jobs.SCHEMAS}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "One of API_KEYS (if set)."},
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Any user, one of API_KEYS as password.",
                },
            },
        },
    }


def openapi_json():
    """GET /openapi.json; open without an API key (see server/auth.py OPEN_PATHS)."""
    doc = document()
    if not current_app.config["SETTINGS"].api_keys:
        doc["security"] = []  # this server does not ask for a key; say so
    models = model_ids()
    for path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
        form = doc["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        form["properties"]["model"]["enum"] = models
    return doc
