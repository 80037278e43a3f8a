"""Background jobs over HTTP (service/jobs): `background=true` on a transcription, translation or /asr
request keeps the upload and answers 202 with the job; /v1/audio/jobs lists, shows, cancels and serves the
caller's own jobs. Another key's job is 404, as if it did not exist."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, g, request

from ..errors import Conflict, InsufficientStorage, InvalidRequest, NotFound
from ..jobs import callbacks
from ..jobs.store import BudgetExceeded, JobRecord, JobSpec, JobStore
from .job_fields import JOB_FIELDS

bp = Blueprint("jobs", __name__, url_prefix="/v1/audio/jobs")

# a job's endpoint -> the path it replays, the view that renders it, its file field (jobs/runner.py)
ENDPOINTS = {
    "transcriptions": ("/v1/audio/transcriptions", "openai.transcriptions", "file"),
    "translations": ("/v1/audio/translations", "openai.translations", "file"),
    "asr": ("/asr", "asr.asr", "audio_file"),
}
LIST_MAX = 100  # OpenAI's list limit


def store() -> JobStore:
    return current_app.extensions["jobs"]


def owner() -> str:
    return g.get("key_id") or ""


def job_object(job: JobRecord) -> dict:
    return job.to_object()


def accept(endpoint: str, response_format: str, callback_url: str | None) -> tuple[dict, int]:
    """Keep the upload and the request's fields as a queued job: 202 with the job; 507 over the budget."""
    cfg = current_app.config["SETTINGS"]
    if callback_url:
        if not cfg.webhook_secret:
            raise InvalidRequest(
                "callback_url needs the server's WEBHOOK_SECRET, which is not set.", param="callback_url"
            )
        callbacks.check_destination(callback_url, cfg.webhook_allow_private)
    field = ENDPOINTS[endpoint][2]
    upload = request.files.get(field)
    if upload is None:
        raise InvalidRequest(f"Missing the audio file: send it as multipart field '{field}'.", param=field)
    size = upload.stream.seek(0, os.SEEK_END)
    upload.stream.seek(0)
    params = {
        "form": [[k, v] for k, v in request.form.items(multi=True) if k not in JOB_FIELDS],
        "query": [[k, v] for k, v in request.args.items(multi=True) if k not in JOB_FIELDS],
    }
    spec = JobSpec(endpoint, params, response_format, upload.filename or "audio", callback_url)
    try:
        job = store().create(owner(), spec, upload.stream, size, cfg.jobs_max_bytes)
    except BudgetExceeded as full:
        raise InsufficientStorage(
            f"The job store is full: {full}. Retry once older jobs expire (JOBS_TTL) or are fetched.",
            code="jobs_storage_full",
        ) from None
    return job_object(job), 202


def _own(job_id: str) -> JobRecord:
    job = store().get(owner(), job_id)
    if job is None:
        raise NotFound(f"No job {job_id!r}.", param="job_id", code="job_not_found")
    return job


@bp.get("")
def list_jobs():
    after = request.args.get("after") or None
    try:
        limit = min(LIST_MAX, max(1, int(request.args.get("limit", "20"))))
    except ValueError:
        raise InvalidRequest("limit: an integer from 1 to 100.", param="limit") from None
    jobs, more = store().list_jobs(owner(), after, limit)
    data = [job_object(j) for j in jobs]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


@bp.get("/<job_id>")
def get_job(job_id: str):
    return job_object(_own(job_id))


@bp.delete("/<job_id>")
def cancel_job(job_id: str):
    _own(job_id)
    return job_object(store().cancel(owner(), job_id))


@bp.get("/<job_id>/result")
def job_result(job_id: str):
    job = _own(job_id)
    result = store().read_result(job_id) if job.status == "completed" else None
    if result is None:
        raise Conflict(
            f"The job is {job.status}: its result is there once it is completed.", code="job_not_completed"
        )
    body, content_type = result
    return Response(body, content_type=content_type)
