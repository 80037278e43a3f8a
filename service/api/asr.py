"""whisper-asr-webservice's API: POST /asr and POST /detect-language.

Clients of that project (subtitle tools such as Bazarr) work by changing only the URL. Query parameters
are declared in asr_fields.py (AsrQuery, DetectQuery); the upload is the multipart field audio_file, decoded
by ffmpeg, or raw 16 kHz mono s16le PCM with encode=false, which is judged by its duration
(MAX_AUDIO_SECONDS), not by MAX_UPLOAD_MB: Bazarr sends a film's audio that way, 32 kB per second.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..audio import PCM_BYTES_PER_SECOND
from ..batching.job import JobOptions
from ..errors import AudioTooLong, PayloadTooLarge
from ..formats import render
from ..settings.choices import ENGINES
from . import asr_fields, fields, jobs, pipeline

bp = Blueprint("asr", __name__)

MULTIPART_SLACK_BYTES = 64 * 1024  # boundaries and part headers around the raw PCM


@bp.before_request
def _raw_pcm_limit() -> None:
    """encode=false: the body may be as large as MAX_AUDIO_SECONDS of PCM, whatever MAX_UPLOAD_MB says."""
    if fields.parse(asr_fields.DetectQuery, request.args).encode:
        return
    cfg = pipeline.settings()
    limit = int(cfg.max_audio_seconds * PCM_BYTES_PER_SECOND) + MULTIPART_SLACK_BYTES
    if request.content_length is not None and request.content_length > limit:
        raise AudioTooLong(
            f"The audio is longer than the {cfg.max_audio_seconds:g} s this server accepts "
            "(MAX_AUDIO_SECONDS; raw PCM is 32 kB per second).",
            param="audio_file",
        )
    request.max_content_length = limit


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_error):
    """413 names this face's upload field."""
    limit = (
        "MAX_UPLOAD_MB" if fields.parse(asr_fields.DetectQuery, request.args).encode else "MAX_AUDIO_SECONDS"
    )
    error = PayloadTooLarge(f"The upload is larger than the server accepts ({limit}).", param="audio_file")
    return error.body(), error.status


@bp.post("/asr")
def asr():
    query = fields.parse(
        asr_fields.AsrQuery, request.args, {"multilingual": pipeline.scheduler().engine.is_multilingual}
    )
    if query.background:  # keep the upload as a job: 202 (api/jobs.py)
        return jobs.accept("asr", query.output, query.callback_url)
    job = pipeline.submit(_audio(query.encode), query.job_options())
    transcript = pipeline.wait(job)
    if query.hints():
        transcript = pipeline.diarized(job, transcript, query.hints())
    output = "asr_json" if query.output == "json" else query.output
    body, content_type = pipeline.rendered(lambda: render(output, transcript))
    headers = {
        "Asr-Engine": ENGINES[pipeline.scheduler().engine.name],  # the module: its ASR_ENGINE name
        "Content-Disposition": _attachment(query.output),
    }
    return Response(body, content_type=content_type, headers=headers)


@bp.post("/detect-language")
def detect_language():
    query = fields.parse(asr_fields.DetectQuery, request.args)
    job = pipeline.submit(_audio(query.encode), JobOptions(detect_only=True))
    transcription = pipeline.wait(job)
    code = transcription.language
    probability = (job.language_probs or {}).get(code, 1.0)
    return {
        "detected_language": fields.LANGUAGES.get(code, code),
        "language_code": code,
        "confidence": round(float(probability), 4),
    }


def _audio(encode: bool):
    """audio_file decoded by ffmpeg, or taken as raw 16 kHz mono s16le PCM when encode=false."""
    return pipeline.decode_upload("audio_file") if encode else pipeline.raw_pcm("audio_file")


def _attachment(output: str) -> str:
    """Content-Disposition naming the result `<upload's full name>.<output>`, as whisper-asr-webservice does
    (episode.mkv -> episode.mkv.srt), safe whatever the client sent."""
    upload = request.files.get("audio_file")
    name = re.split(r"[\\/]", (upload.filename if upload else "") or "audio")[-1].strip(". ") or "audio"
    ascii_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", unicodedata.normalize("NFKD", name))
    ascii_name = re.sub(r"\.{2,}", ".", ascii_name).strip("_.") or "audio"
    return f"attachment; filename=\"{ascii_name}.{output}\"; filename*=UTF-8''{quote(name)}.{output}"
