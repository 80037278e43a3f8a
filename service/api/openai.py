"""OpenAI's audio API: /v1/audio/transcriptions, /v1/audio/translations, /v1/models.

Field names, response shapes and errors follow https://platform.openai.com/docs/api-reference/audio, so the
official `openai` client works unchanged. Extension fields (documented in the README) expose openai-whisper's
decoding knobs: no_speech_threshold, compression_ratio_threshold, logprob_threshold,
condition_on_previous_text, hallucination_silence_threshold, beam_size.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, request, stream_with_context

from .. import formats
from ..engines.base import Thresholds
from ..errors import APIError, InvalidRequest, NotFound
from ..formats import OPENAI_FORMATS, render
from ..job import FALLBACK_TEMPERATURES, JobOptions
from . import jobs

bp = Blueprint("openai", __name__, url_prefix="/v1")

MODEL_ALIASES = ("whisper-1",)
CREATED = int(time.time())


@bp.post("/audio/transcriptions")
def transcriptions():
    return _handle("transcribe")


@bp.post("/audio/translations")
def translations():
    return _handle("translate")


@bp.get("/models")
def list_models():
    return {"object": "list", "data": [_model_object(name) for name in _model_ids()]}


@bp.get("/models/<path:model_id>")
def get_model(model_id: str):
    if model_id not in _model_ids():
        raise NotFound(f"The model {model_id!r} does not exist.", param="model", code="model_not_found")
    return _model_object(model_id)


def _model_ids() -> list[str]:
    return [jobs.scheduler().engine.model_name, *MODEL_ALIASES]


def _model_object(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "whisper-gpu-service"}


def _handle(task: str):
    form = request.form
    response_format, options, stream = _parse(form, task)
    audio = jobs.decode_upload("file")
    job = jobs.submit(audio, options)
    if stream:
        return _sse(job)
    transcription = jobs.wait(job)
    granularities = _granularities(form)
    body, mimetype = jobs.rendered(
        lambda: render(
            response_format, transcription, task=task, words="word" in granularities,
            segments="segment" in granularities or not granularities,
        )
    )  # fmt: skip
    return Response(body, mimetype=mimetype)


def _parse(form, task: str) -> tuple[str, JobOptions, bool]:
    """Validate every field before the upload is decoded, so bad requests fail fast and cheap."""
    model = form.get("model") or MODEL_ALIASES[0]
    if model not in _model_ids():
        raise InvalidRequest(
            f"Unknown model {model!r}: this server serves {', '.join(_model_ids())}.",
            param="model", code="model_not_found",
        )  # fmt: skip
    response_format = form.get("response_format") or "json"
    if response_format not in OPENAI_FORMATS:
        raise InvalidRequest(
            f"Unsupported response_format {response_format!r}: use one of {', '.join(OPENAI_FORMATS)}.",
            param="response_format",
        )  # fmt: skip
    granularities = _granularities(form)
    if granularities and response_format != "verbose_json":
        raise InvalidRequest(
            "timestamp_granularities[] requires response_format=verbose_json.",
            param="timestamp_granularities[]",
        )  # fmt: skip
    temperature = jobs.number(form, "temperature", float, 0.0, 1.0, default=0.0)
    condition = jobs.boolean(form, "condition_on_previous_text", default=False)
    sequential = condition or jobs.settings().decode_mode == "sequential"
    stream = jobs.boolean(form, "stream", default=False)
    options = JobOptions(
        task=task,
        language=jobs.language_code(form.get("language")) if task == "transcribe" else None,
        temperatures=FALLBACK_TEMPERATURES if temperature == 0 else (temperature,),
        prompt=form.get("prompt") or None,
        beam_size=jobs.number(form, "beam_size", int, 1, 16),
        word_timestamps="word" in granularities,
        thresholds=_thresholds(form),
        sequential=sequential,
        condition_on_previous_text=condition,
        vad=jobs.default_vad(),
    )
    return response_format, options, stream


def _granularities(form) -> list[str]:
    values = form.getlist("timestamp_granularities[]") + form.getlist("timestamp_granularities")
    for value in values:
        if value not in ("word", "segment"):
            raise InvalidRequest(
                f"Unsupported timestamp granularity {value!r}: use word and/or segment.",
                param="timestamp_granularities[]",
            )  # fmt: skip
    return values


def _thresholds(form) -> Thresholds:
    defaults = Thresholds()
    return Thresholds(
        compression_ratio=jobs.number(form, "compression_ratio_threshold", float, 0, 100,
                                      default=defaults.compression_ratio),
        logprob=jobs.number(form, "logprob_threshold", float, -100, 0, default=defaults.logprob),
        no_speech=jobs.number(form, "no_speech_threshold", float, 0, 1, default=defaults.no_speech),
        hallucination_silence=jobs.number(form, "hallucination_silence_threshold", float, 0, 3600),
    )  # fmt: skip


def _sse(job) -> Response:
    """Server-Sent Events in OpenAI's shapes: transcript.text.delta per window, then transcript.text.done."""

    def events():
        parts = []
        try:
            for text in jobs.stream_events(job, job.window_text):
                parts.append(text)
                yield _event({"type": "transcript.text.delta", "delta": text, "logprobs": None})
        except APIError as error:
            yield _event({"type": "error", **error.body()})
            return
        transcription = jobs.finished(job)
        usage = formats.usage(transcription)
        yield _event({"type": "transcript.text.done", "text": transcription.text, "logprobs": None,
                      "usage": usage})  # fmt: skip

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(stream_with_context(events()), mimetype="text/event-stream", headers=headers)


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
