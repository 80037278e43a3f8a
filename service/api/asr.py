"""whisper-asr-webservice's API: POST /asr and POST /detect-language.

Clients of that project (subtitle tools such as Bazarr) work by changing only the URL: query parameters
task, language, initial_prompt, encode, output (txt|vtt|srt|tsv|json), word_timestamps; form field audio_file.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

import numpy as np
from flask import Blueprint, Response, request

from ..errors import InvalidAudio, InvalidRequest
from ..formats import ASR_OUTPUTS, render
from ..job import FALLBACK_TEMPERATURES, JobOptions
from . import jobs

bp = Blueprint("asr", __name__)


@bp.post("/asr")
def asr():
    args = request.args
    task = args.get("task", "transcribe")
    if task not in ("transcribe", "translate"):
        raise InvalidRequest(f"task must be transcribe or translate, got {task!r}.", param="task")
    output = args.get("output", "txt")
    if output not in ASR_OUTPUTS:
        raise InvalidRequest(
            f"output must be one of {', '.join(ASR_OUTPUTS)}, got {output!r}.", param="output"
        )
    options = JobOptions(
        task=task,
        language=jobs.language_code(args.get("language")),
        temperatures=FALLBACK_TEMPERATURES,
        prompt=args.get("initial_prompt") or None,
        word_timestamps=jobs.boolean(args, "word_timestamps"),
        sequential=jobs.settings().decode_mode == "sequential",
        vad=jobs.default_vad(),
    )
    job = jobs.submit(_audio(), options)
    transcription = jobs.wait(job)
    body, mimetype = jobs.rendered(lambda: render("asr_json" if output == "json" else output, transcription))
    headers = {"Asr-Engine": jobs.scheduler().engine.name, "Content-Disposition": _attachment(output)}
    return Response(body, mimetype=mimetype, headers=headers)


@bp.post("/detect-language")
def detect_language():
    job = jobs.submit(_audio(), JobOptions(detect_only=True, vad=jobs.default_vad()))
    transcription = jobs.wait(job)
    code = transcription.language
    probability = (job.language_probs or {}).get(code, 1.0)
    return {
        "detected_language": jobs.LANGUAGES.get(code, code),
        "language_code": code,
        "confidence": round(float(probability), 4),
    }


def _audio() -> np.ndarray:
    """audio_file decoded by ffmpeg, or taken as raw 16 kHz mono s16le PCM when encode=false."""
    if jobs.boolean(request.args, "encode", default=True):
        return jobs.decode_upload("audio_file")
    upload = request.files.get("audio_file")
    if upload is None:
        raise InvalidRequest(
            "Missing the audio file: send it as multipart field 'audio_file'.", param="audio_file"
        )
    raw = upload.stream.read(jobs.settings().max_upload_bytes + 1)
    if len(raw) < 2:
        raise InvalidAudio("The raw PCM upload is empty.", param="audio_file", code="empty_audio")
    audio = np.frombuffer(raw[: len(raw) // 2 * 2], np.int16).astype(np.float32) / 32768.0
    if audio.size > jobs.settings().max_audio_seconds * 16000:
        raise InvalidAudio("The audio is longer than this server accepts.", param="audio_file",
                           code="audio_too_long")  # fmt: skip
    return audio


def _attachment(output: str) -> str:
    """Content-Disposition naming the result after the upload, safe whatever the client sent."""
    upload = request.files.get("audio_file")
    name = (upload.filename if upload else "") or "audio"
    stem = re.split(r"[\\/]", name)[-1].rsplit(".", 1)[0] or "audio"
    ascii_stem = re.sub(r"[^A-Za-z0-9_-]+", "_", unicodedata.normalize("NFKD", stem)).strip("_") or "audio"
    return f"attachment; filename=\"{ascii_stem}.{output}\"; filename*=UTF-8''{quote(stem)}.{output}"
