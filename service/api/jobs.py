"""What both API faces share: read the upload, decode it, queue it, wait for it, record the stages."""

from __future__ import annotations

import os
import queue
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
from flask import current_app, g, request

from .. import metrics
from ..audio import decode_file, spooled_upload
from ..engines.base import SAMPLE_RATE
from ..errors import AudioTooLong, InvalidAudio, InvalidRequest
from ..scheduler import HOP_LENGTH, Job, JobOptions, Scheduler, Transcription
from ..settings import Settings
from ..transcript import Segment, Transcript, Word

PCM_BYTES_PER_SECOND = SAMPLE_RATE * 2  # raw 16 kHz mono s16le: 32 kB per second


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def scheduler() -> Scheduler:
    return current_app.extensions["scheduler"]


def labels() -> dict[str, str]:
    return scheduler().labels


def observe_stage(stage: str, seconds: float) -> None:
    metrics.STAGE_DURATION.labels(stage=stage, **labels()).observe(seconds)


# -- one job's way through the service ---------------------------------------------------------------------
def decode_upload(field: str) -> object:
    """The named multipart file, decoded to 16 kHz mono float32; 400 when it is missing."""
    upload = request.files.get(field)
    if upload is None:
        raise InvalidRequest(f"Missing the audio file: send it as multipart field '{field}'.", param=field)
    cfg = settings()
    scheduler().check_admission(g.get("started"))  # a full queue refuses before the upload costs ffmpeg's CPU
    began = time.monotonic()
    with spooled_upload(upload.stream, cfg.tmp_dir) as path:
        audio = decode_file(path, cfg.max_audio_seconds, cfg.ffmpeg_timeout)
    observe_stage("audio_decode", time.monotonic() - began)
    return audio


def raw_pcm(field: str) -> np.ndarray:
    """The named multipart file taken as raw 16 kHz mono s16le PCM (encode=false), judged by its duration.

    werkzeug has spooled the part to a temp file; it is converted a MiB at a time into the float32 array,
    so a film's audio never sits in memory twice."""
    cfg = settings()
    scheduler().check_admission(g.get("started"))
    upload = request.files.get(field)
    if upload is None:
        raise InvalidRequest(f"Missing the audio file: send it as multipart field '{field}'.", param=field)
    stream = upload.stream
    samples = stream.seek(0, os.SEEK_END) // 2
    stream.seek(0)
    if samples == 0:
        raise InvalidAudio("The raw PCM upload is empty.", param=field, code="empty_audio")
    if samples > cfg.max_audio_seconds * SAMPLE_RATE:
        limit = f"{cfg.max_audio_seconds:g} s"
        raise AudioTooLong(f"The audio is longer than the {limit} this server accepts (MAX_AUDIO_SECONDS).",
                           param=field)  # fmt: skip
    audio = np.empty(samples, np.float32)
    done = 0
    while done < samples:
        chunk = np.frombuffer(stream.read(min(1 << 20, (samples - done) * 2)), "<i2")
        if chunk.size == 0:  # pragma: no cover - the file shrank under us
            break
        audio[done : done + chunk.size] = chunk / np.float32(32768.0)
        done += chunk.size
    return audio[:done]


def submit(audio, options: JobOptions) -> Job:
    cfg = settings()
    seconds = len(audio) / 16000
    deadline = time.monotonic() + cfg.request_timeout + cfg.request_timeout_per_audio_second * seconds
    if cfg.force_tokens:
        options = replace(options, force_tokens=cfg.force_tokens)
    job = Job(audio=audio, options=options, deadline=deadline, arrived_at=g.get("started"))
    scheduler().submit(job)
    g.job = job
    return job


def wait(job: Job) -> Transcription:
    scheduler().wait(job, disconnected=client_disconnected(request.environ))
    return finished(job)


def finished(job: Job) -> Transcription:
    """Record a finished job's stage metrics and return its transcription."""
    observe_stage("queue_wait", job.queue_wait)
    observe_stage("inference", job.inference_seconds)
    metrics.AUDIO_SECONDS.labels(**labels()).inc(job.duration)
    metrics.AUDIO_DURATION.labels(**labels()).observe(job.duration)
    metrics.REAL_TIME_FACTOR.labels(**labels()).observe(job.inference_seconds / max(job.duration, 1e-3))
    return job.transcription()


def as_transcript(t: Transcription) -> Transcript:
    """Adapter: the scheduler's OpenAI-shaped segment dicts -> the typed Transcript that formats render."""
    segments = tuple(
        Segment(
            start=s["start"], end=s["end"], text=s["text"], tokens=tuple(s["tokens"]),
            words=None if "words" not in s else tuple(Word(**w) for w in s["words"]),
            temperature=s["temperature"], avg_logprob=s["avg_logprob"],
            compression_ratio=s["compression_ratio"], no_speech_prob=s["no_speech_prob"], seek=s["seek"],
        )
        for s in t.segments
    )  # fmt: skip
    return Transcript(language=t.language, duration=t.duration, segments=segments)


def segments_through(job: Job, index: int) -> tuple[Segment, ...]:
    """Adapter: the segments of windows 0..index, all finished once window `index`'s event has come."""
    segments = as_transcript(job.transcription()).segments
    if job.transcript is not None:  # sequential mode: one event for the whole file
        return segments
    last_seek = job.windows[index][0] // HOP_LENGTH
    return tuple(s for s in segments if s.seek <= last_seek)


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


def stream_events(job: Job) -> Iterator[int]:
    """Each window's index as it finishes, in order, until the job is done; then its error, if any.

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
            yield index
    finally:
        if not job.done.is_set():
            scheduler().cancel(job, "disconnect")
    if job.error:
        raise job.error
