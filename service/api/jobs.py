"""What both API faces share: read the upload, decode it, queue it, wait for it, record the stages."""

from __future__ import annotations

import queue
import socket
import time
from collections.abc import Callable, Iterator

from flask import current_app, g, request

from .. import metrics
from ..engines.base import SAMPLE_RATE
from ..errors import InvalidRequest
from ..intake.upload import decode_file, spooled_upload
from ..intake.vad import VadParams
from ..job import Job, JobOptions
from ..scheduler import Scheduler
from ..settings import Settings
from ..transcript import Transcript

try:
    from whisper.tokenizer import LANGUAGES, TO_LANGUAGE_CODE
except ImportError:  # pragma: no cover
    LANGUAGES, TO_LANGUAGE_CODE = {}, {}


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def scheduler() -> Scheduler:
    return current_app.extensions["scheduler"]


def labels() -> dict[str, str]:
    return scheduler().labels


def observe_stage(stage: str, seconds: float) -> None:
    metrics.STAGE_DURATION.labels(stage=stage, **labels()).observe(seconds)


# -- form fields -------------------------------------------------------------------------------------------
def language_code(value: str | None, param: str = "language") -> str | None:
    """ISO-639-1 code or English name ('de', 'German') -> 'de'; None or '' -> None (detect)."""
    if not value:
        return None
    key = value.strip().lower()
    code = key if key in LANGUAGES else TO_LANGUAGE_CODE.get(key)
    if code is None:
        raise InvalidRequest(
            f"Unsupported language {value!r}: use an ISO-639-1 code such as 'en' or 'de'.",
            param=param, code="unsupported_language",
        )  # fmt: skip
    return code


def number(form, name: str, kind: type = float, low: float | None = None, high: float | None = None,
           default=None):  # fmt: skip
    raw = form.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number, got {raw!r}.", param=name) from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidRequest(f"{name} must be between {low} and {high}, got {raw!r}.", param=name)
    return value


def boolean(form, name: str, default: bool = False) -> bool:
    raw = form.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise InvalidRequest(f"{name} must be true or false, got {raw!r}.", param=name)


# -- one job's way through the service ---------------------------------------------------------------------
def decode_upload(field: str) -> object:
    """The named multipart file, decoded to 16 kHz mono float32; 400 when it is missing."""
    upload = request.files.get(field)
    if upload is None:
        raise InvalidRequest(f"Missing the audio file: send it as multipart field '{field}'.", param=field)
    cfg = settings()
    # a full queue (or a key over its share) refuses before the upload costs ffmpeg's CPU
    scheduler().check_admission(g.get("started"), g.get("key_id"))
    began = time.monotonic()
    with spooled_upload(upload.stream, cfg.tmp_dir) as path:
        audio = decode_file(path, cfg.max_audio_seconds, cfg.ffmpeg_timeout)
    observe_stage("audio_decode", time.monotonic() - began)
    return audio


def default_vad() -> VadParams | None:
    """The VAD a request gets when it does not choose: the VAD_* settings, or None when VAD=false."""
    cfg = settings()
    if not cfg.vad:
        return None
    return VadParams(threshold=cfg.vad_threshold, min_silence_ms=cfg.vad_min_silence_ms,
                     speech_pad_ms=cfg.vad_speech_pad_ms)  # fmt: skip


def submit(audio, options: JobOptions) -> Job:
    """Plan the audio's windows (VAD), then queue the job; 429/503 when the scheduler refuses it."""
    cfg = settings()
    seconds = len(audio) / SAMPLE_RATE
    deadline = time.monotonic() + cfg.request_timeout + cfg.request_timeout_per_audio_second * seconds
    began = time.monotonic()
    job = Job.planned(audio, options, deadline, arrived_at=g.get("started"), key_id=g.get("key_id"))
    observe_stage("vad", time.monotonic() - began)
    speech_seconds = sum(r.seconds for r in job.speech)
    metrics.SPEECH_RATIO.labels(**labels()).observe(speech_seconds / max(seconds, 1e-3))
    scheduler().submit(job)
    g.job = job
    return job


def wait(job: Job) -> Transcript:
    scheduler().wait(job, disconnected=client_disconnected(request.environ))
    return finished(job)


def finished(job: Job) -> Transcript:
    """Record a finished job's stage metrics and return its transcription."""
    observe_stage("queue_wait", job.queue_wait)
    observe_stage("inference", job.inference_seconds)
    metrics.AUDIO_SECONDS.labels(**labels()).inc(job.duration)
    metrics.AUDIO_DURATION.labels(**labels()).observe(job.duration)
    metrics.REAL_TIME_FACTOR.labels(**labels()).observe(job.inference_seconds / max(job.duration, 1e-3))
    return job.transcript()


def rendered(render: Callable[[], tuple[str, str]]) -> tuple[str, str]:
    began = time.monotonic()
    body = render()
    observe_stage("render", time.monotonic() - began)
    return body


def client_disconnected(environ: dict) -> Callable[[], bool]:
    """A probe that tells whether the client has hung up, by peeking at gunicorn's socket.

    The request body has been read in full, so a readable socket with no data means the peer closed it.
    """
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return lambda: False

    def probe() -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    return probe


def stream_events(job: Job, texts: Callable[[int], str]) -> Iterator[str]:
    """Each window's text as it finishes, in order, until the job is done; then its error, if any.

    When the client goes away the server closes this generator, and the job is cancelled."""
    try:
        while True:
            try:
                kind, index = job.events.get(timeout=max(0.1, job.deadline - time.monotonic()))
            except queue.Empty:
                scheduler().cancel(job, "timeout")
                continue  # the cancellation queued a "done" event
            if kind == "done":
                break
            yield texts(index)
    finally:
        if not job.done.is_set():
            scheduler().cancel(job, "disconnect")
    if job.error:
        raise job.error
