"""The OpenAPI document's background-job part (api/jobs.py): the 202 of a background request, and the
/v1/audio/jobs operations."""

from __future__ import annotations

from .openapi_responses import errors, json_content

JOB_REF = {"$ref": "#/components/schemas/AudioJob"}
LIST_REF = {"$ref": "#/components/schemas/AudioJobList"}
NULLABLE_INT = {"type": ["integer", "null"]}
SCHEMAS = {
    "AudioJob": {
        "type": "object",
        "required": ["id", "object", "status", "progress", "created_at", "completed_at", "error"],
        "properties": {
            "id": {"type": "string", "examples": ["job_4ca6f59c33c88e41ff1c7f7b"]},
            "object": {"const": "audio.job"},
            "status": {"enum": ["queued", "in_progress", "completed", "failed", "cancelled"]},
            "progress": {"type": "number", "minimum": 0, "maximum": 1, "description": "Windows done."},
            "created_at": {"type": "integer", "description": "Unix seconds."},
            "completed_at": NULLABLE_INT,
            "error": {"type": ["object", "null"], "description": "When failed: message, type, code."},
            "response_format": {"type": "string"},
            "duration": {"type": ["number", "null"], "description": "Audio seconds, once decoded."},
        },
    },
    "AudioJobList": {
        "type": "object",
        "required": ["object", "data", "has_more"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": JOB_REF},
            "first_id": {"type": ["string", "null"]},
            "last_id": {"type": ["string", "null"]},
            "has_more": {"type": "boolean"},
        },
    },
}
ACCEPTED = {
    "202": {
        "description": "background=true: the upload is kept; the job (GET /v1/audio/jobs/{id}).",
        "content": json_content(JOB_REF),
    }
}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
NOT_FOUND = {"404": {**errors("404")["404"], "description": "No such job, or another API key's."}}


def _one(summary: str, operation_id: str, ok: dict, *extra: str) -> dict:
    return {
        "summary": summary,
        "operationId": operation_id,
        "parameters": [JOB_ID],
        "responses": {"200": ok, **errors("401"), **NOT_FOUND, **errors(*extra, "500")},
    }


def paths() -> dict:
    job = {"description": "The job.", "content": json_content(JOB_REF)}
    result = {
        "description": "Exactly the body and content type the synchronous request would have returned.",
        "content": {"application/json": {"schema": {}}, "text/plain": {"schema": {"type": "string"}}},
    }
    listing = {
        "summary": "The caller's background jobs, newest first.",
        "operationId": "listAudioJobs",
        "parameters": [
            {"name": "after", "in": "query", "schema": {"type": "string"}, "description": "A job id."},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
        ],
        "responses": {
            "200": {
                "description": "Jobs.",
                "content": json_content({"$ref": "#/components/schemas/AudioJobList"}),
            },
            **errors("400", "401", "500"),
        },
    }
    return {
        "/v1/audio/jobs": {"get": listing},
        "/v1/audio/jobs/{job_id}": {
            "get": _one("A background job.", "getAudioJob", job),
            "delete": _one("Cancel a job (a running one stops at its next window).", "cancelAudioJob", job),
        },
        "/v1/audio/jobs/{job_id}/result": {
            "get": _one("A completed job's result.", "getAudioJobResult", result, "409"),
        },
    }
