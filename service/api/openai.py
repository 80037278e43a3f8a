"""OpenAI's audio API: /v1/audio/transcriptions, /v1/audio/translations, /v1/models.

Field names, response shapes and errors follow https://platform.openai.com/docs/api-reference/audio, so the
official `openai` client works unchanged. The fields (OpenAI's and the extensions that expose openai-whisper's
decoding knobs) are declared once, in openai_fields.py.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, current_app, g, request, stream_with_context

from .. import formats, speakers
from ..errors import APIError, NotFound
from ..formats import render
from . import fields, jobs, openai_fields, pipeline, speaker_fields

bp = Blueprint("openai", __name__, url_prefix="/v1")

CREATED = int(time.time())


@bp.post("/audio/transcriptions")
def transcriptions():
    return _handle(openai_fields.TranscriptionForm)


@bp.post("/audio/translations")
def translations():
    return _handle(openai_fields.TranslationForm)


@bp.get("/models")
def list_models():
    return {"object": "list", "data": [_model_object(row) for row in models().describe()]}


@bp.get("/models/<path:model_id>")
def get_model(model_id: str):
    for row in models().describe():
        if row["id"] == model_id:
            return _model_object(row)
    raise NotFound(f"The model {model_id!r} does not exist.", param="model", code="model_not_found")


def models():
    """The worker's models (batching/registry.py): the default, its aliases, and MODELS'."""
    return current_app.extensions["models"]


def model_ids() -> list[str]:
    """Every name a request may use: the default model's, its aliases (MODEL_ALIASES), MODELS' names."""
    return models().names()


def _model_object(row: dict) -> dict:
    """OpenAI's model object, with the engine and whether the model is loaded now (extensions)."""
    return {"id": row["id"], "object": "model", "created": CREATED, "owned_by": "whisper-gpu-service"} | {
        "engine": row["engine"],
        "loaded": row["loaded"],
    }


@bp.teardown_request
def _release_model(error: BaseException | None = None) -> None:
    """The request is over: its lease on a MODELS model ends (MODEL_TTL counts from here)."""
    if g.get("scheduler") is not None:
        models().release(g.pop("scheduler"))


def _handle(form_model: type[openai_fields.TranslationForm]):
    """Validate every field before the upload is decoded, so bad requests fail fast and cheap. The model
    a request names is picked first (404 for a name not offered; loaded on first use, 503 when it does not
    fit): whether it is English-only decides what the other fields may ask."""
    g.scheduler = models().acquire(request.form.get("model") or None)
    context = {"models": model_ids(), "multilingual": g.scheduler.engine.is_multilingual}
    form = fields.parse(form_model, request.form, context)
    if form.background:  # keep the upload as a job: 202 (api/jobs.py)
        return jobs.accept(request.endpoint.split(".")[-1], form.response_format, form.callback_url)
    hints = _speaker_hints(form)
    options = form.job_options()
    audio = pipeline.decode_upload("file")
    if hints:
        speaker_fields.check_length(form, audio)
    job = pipeline.submit(audio, options)
    if form.stream:
        return _sse(job, form, hints)
    transcript = pipeline.wait(job)
    if hints:
        transcript = pipeline.diarized(job, transcript, hints)
    body, content_type = pipeline.rendered(
        lambda: render(
            form.response_format,
            transcript,
            task=form_model.task,
            words=form.words,
            segments=form.segments,
            include_logprobs=options.logprobs,
            layout=form.layout(),
        )
    )
    return Response(body, content_type=content_type)


def _speaker_hints(form) -> speakers.Hints | None:
    """A diarized request's hints, known speakers' clips decoded and embedded (400 for a bad one) before
    the upload is; None when no speakers are asked for."""
    if not getattr(form, "diarized", False):
        return None
    if form.known_speaker_references:  # a full queue refuses before the clips cost ffmpeg and the encoder
        pipeline.scheduler().check_admission(g.get("started"), g.get("key_id"))
    return form.hints(speaker_fields.reference_voices(form, pipeline.decoder()))


def _sse(job, form: openai_fields.TranslationForm, hints: speakers.Hints | None = None) -> Response:
    """Server-Sent Events in the client's stream types: a transcript.text.delta per finished segment, then
    transcript.text.done with the whole text and token usage; an error event if the job fails midway.

    With response_format=verbose_json (an extension: OpenAI streams json and text only) each delta also
    carries its segment as verbose_json has it, and the done event verbose_json's task, language, duration
    and segments: one decode gives a client the live text and the timed transcript. Fields the client's
    types do not declare are kept by the client, never refused."""

    def events():
        if hints:
            yield from _diarized_events(job, form, hints)
            return
        sent = 0
        try:
            for index in pipeline.stream_events(job):
                segments = pipeline.segments_through(job, index)
                for number, segment in enumerate(segments[sent:], sent):
                    yield _event(_delta(number, segment, form))
                sent = max(sent, len(segments))
        except APIError as error:
            yield _event({"type": "error", **error.body()})
            return
        yield _event(_done(pipeline.finished(job), form))

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(stream_with_context(events()), mimetype="text/event-stream", headers=headers)


def _diarized_events(job, form, hints: speakers.Hints):
    """Speakers are found in the audio alone, in this thread while the model decodes; then each window's
    segments go out labelled as soon as the windows before it are decoded: diarized_json as
    transcript.text.segment events (other formats as deltas), then transcript.text.done."""
    labelled = sent = 0
    try:
        found = pipeline.speaker_turns(job, hints)
        label = speakers.labeller(found, hints)
        for index in pipeline.stream_events(job):
            segments = pipeline.segments_through(job, index)
            for segment in label(segments[labelled:]):  # the windows decoded since the last event
                if segment.text.strip():
                    yield _event(_diarized_segment(sent, segment, form))
                    sent += 1
            labelled = max(labelled, len(segments))
        transcript = speakers.label(pipeline.finished(job), found, hints)
    except APIError as error:
        yield _event({"type": "error", **error.body()})
        return
    yield _event(_done(transcript, form))


def _diarized_segment(number: int, segment, form) -> dict:
    if form.response_format == "diarized_json":
        return formats.diarized_segment(number, segment)
    return _delta(number, segment, form)


def _delta(number: int, segment, form: openai_fields.TranslationForm) -> dict:
    delta = {"type": "transcript.text.delta", "delta": segment.text}
    if form.logprobs:
        delta["logprobs"] = formats.logprobs([segment])
    if form.response_format == "verbose_json":
        if form.segments:
            delta["segment"] = formats.segment_dict(number, segment)
        if form.words:
            delta["words"] = formats.word_dicts(segment.words or ())
    return delta


def _done(transcript, form: openai_fields.TranslationForm) -> dict:
    done = {"type": "transcript.text.done", "text": transcript.text, "usage": formats.token_usage(transcript)}
    if form.logprobs:
        done["logprobs"] = formats.logprobs(transcript.segments)
    if form.response_format == "verbose_json":  # its usage is OpenAI's duration usage: the tokens' stays
        verbose = formats.verbose_body(transcript, task=form.task, words=form.words, segments=form.segments)
        done.update({k: v for k, v in verbose.items() if k not in done})
    return done


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
