"""The OpenAPI document's responses: error statuses with their meaning, and the response schemas."""

from __future__ import annotations

ERROR_STATUSES = {
    "400": "Invalid request: a form field, a parameter or the audio itself.",
    "401": "Missing or invalid API key (only when API_KEYS is set).",
    "404": "No such model.",
    "409": "The job has not completed (yet): its status says why.",
    "413": "The upload is larger than MAX_UPLOAD_MB (raw PCM: than MAX_AUDIO_SECONDS).",
    "429": "The queue is full; retry after Retry-After seconds.",
    "500": "Unexpected server error.",
    "503": "Not ready (model loading or failed) or shutting down; see Retry-After.",
    "504": "The request did not finish within its deadline.",
    "507": "No room to store the upload (background=true: the job store's JOBS_MAX_BYTES).",
}
RETRYABLE = ("429", "503")


def json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def errors(*statuses: str) -> dict:
    out = {}
    for status in statuses:
        response: dict = {
            "description": ERROR_STATUSES[status],
            "content": json_content({"$ref": "#/components/schemas/Error"}),
        }
        if status in RETRYABLE:
            response["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
        out[status] = response
    return out


NULLABLE_STRING = {"type": ["string", "null"]}
# the shapes of the responses, under #/components/schemas
SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "additionalProperties": False,
                "properties": {
                    "message": {"type": "string", "minLength": 1},
                    "type": {"type": "string"},
                    "param": NULLABLE_STRING,
                    "code": NULLABLE_STRING,
                },
            }
        },
    },
    "Transcription": {
        "type": "object",
        "required": ["text"],
        "properties": {
            "text": {"type": "string"},
            "language": {"type": "string"},
            "duration": {"type": "number", "minimum": 0},
            "segments": {"type": "array", "items": {"type": "object"}},
            "words": {"type": "array", "items": {"type": "object"}},
            "usage": {"type": "object"},
        },
    },
    "Model": {
        "type": "object",
        "required": ["id", "object", "created", "owned_by"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "model"},
            "created": {"type": "integer"},
            "owned_by": {"type": "string"},
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}},
        },
    },
}
