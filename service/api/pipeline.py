"""What both API faces share: read the upload, decode it, queue it, wait for it, record the stages."""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
from flask import current_app, g, request

from .. import metrics, speakers
from ..audio import SAMPLE_RATE
from ..batching.job import Job, JobOptions, with_server_defaults
from ..batching.scheduler import Scheduler
from ..batching.work import background_passed_over
from ..errors import AudioTooLong, InvalidAudio, InvalidRequest
from ..intake.ffmpeg import Decoder
from ..intake.upload import spooled_upload
from ..settings import Settings
from ..transcript import Segment, Transcript


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def scheduler() -> Scheduler:
    """The request's model's scheduler (openai.py picks it: g.scheduler), else the default model's."""
    return g.get("scheduler") or current_app.extensions["scheduler"]


def background_share(cfg: Settings) -> int:
    return background_passed_over(cfg.jobs_background_share)


def decoder() -> Decoder:
    """The worker's ffmpeg decoder, made on first use: at most DECODE_SLOTS decodes at once."""
    made = current_app.extensions.get("decoder")
    if made is None:
        cfg = settings()
        made = Decoder(cfg.decode_slots, cfg.max_audio_seconds, cfg.ffmpeg_timeout, cfg.tmp_dir)
        made = current_app.extensions.setdefault("decoder", made)
    return made


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
    admit()  # a full queue refuses before the upload costs ffmpeg's CPU
    began = time.monotonic()
    with spooled_upload(upload.stream, cfg.tmp_dir) as path:
        audio = decoder().decode(path)
    observe_stage("audio_decode", time.monotonic() - began)
    return audio


def raw_pcm(field: str) -> np.ndarray:
    """The named multipart file taken as raw 16 kHz mono s16le PCM (encode=false), judged by its duration.

    werkzeug has spooled the part to a temp file; it is converted a MiB at a time into the float32 array,
    so a film's audio never sits in memory twice."""
    cfg = settings()
    admit()
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
        raise AudioTooLong(
            f"The audio is longer than the {limit} this server accepts (MAX_AUDIO_SECONDS).", param=field
        )
    audio = np.empty(samples, np.float32)
    done = 0
    while done < samples:
        chunk = np.frombuffer(stream.read(min(1 << 20, (samples - done) * 2)), "<i2")
        if chunk.size == 0:  # pragma: no cover - the file shrank under us
            break
        audio[done : done + chunk.size] = chunk / np.float32(32768.0)
        done += chunk.size
    return audio[:done]


def admit() -> None:
    """Refuse (429/503) before decoding what the queue would refuse; a stored job (g.background, a
    jobs.runner.Run) is outside the request queue: its runner bounds it."""
    if g.get("background") is None:
        scheduler().check_admission(g.get("started"), g.get("key_id"))
        intake_begins()


def submit(audio, options: JobOptions) -> Job:
    """Plan the audio's windows (VAD), then queue the job; 429/503 when the scheduler refuses it."""
    cfg = settings()
    options = with_server_defaults(options, cfg, scheduler().engine)
    seconds = len(audio) / SAMPLE_RATE
    deadline = time.monotonic() + cfg.request_timeout + cfg.request_timeout_per_audio_second * seconds
    began = time.monotonic()
    run = g.get("background")  # a stored job's run (jobs/runner.py): background priority, no deadline
    background = {} if run is None else {"background": True, "max_passed_over": background_share(cfg)}
    if run is not None:
        deadline = float("inf")
    job = Job.planned(
        audio, options, deadline, arrived_at=g.get("started"), key_id=g.get("key_id"), **background
    )
    if run is not None:
        run.attach(job)  # resumes from its checkpoint, if any
    observe_stage("vad", time.monotonic() - began)
    speech_seconds = sum(r.seconds for r in job.speech)
    metrics.SPEECH_RATIO.labels(**labels()).observe(speech_seconds / max(seconds, 1e-3))
    try:
        scheduler().submit(job)
    finally:
        intake_over()  # after the windows are queued, so the scheduler sees them before it stops waiting
    g.job = job
    return job


def intake_begins() -> None:
    """This request is admitted and decoding its audio: a small batch may wait for it (BATCH_WAIT_MS)."""
    if not g.get("arriving"):
        g.arriving = True
        scheduler().arrival(+1)


def intake_over(error: BaseException | None = None) -> None:
    """Queued, refused or failed: no batch waits for this request any more (also the app's teardown)."""
    if g.pop("arriving", False):
        scheduler().arrival(-1)


def wait(job: Job) -> Transcript:
    run = g.get("background")  # a stored job stops when cancelled, taken over or handed back
    scheduler().wait(job, disconnected=run.stopped if run else client_disconnected(request.environ))
    return finished(job)


def finished(job: Job) -> Transcript:
    """Record a finished job's stage metrics and return its transcript."""
    observe_stage("queue_wait", job.queue_wait)
    observe_stage("inference", job.inference_seconds)
    metrics.AUDIO_SECONDS.labels(**labels()).inc(job.duration)
    metrics.AUDIO_DURATION.labels(**labels()).observe(job.duration)
    metrics.REAL_TIME_FACTOR.labels(**labels()).observe(job.inference_seconds / max(job.duration, 1e-3))
    return job.transcript()


# diarize stages at once per worker: each holds its audio's mel windows and embeddings (about 0.5 GB for 3 h),
# and on a GPU the encoder runs beside the model loop; the others wait their turn (their decode is done)
DIARIZE_AT_ONCE = threading.BoundedSemaphore(2)


def diarized(job: Job, transcript: Transcript, hints: speakers.Hints) -> Transcript:
    """The transcript with speakers (service/speakers), timed as the `diarize` stage."""
    return speakers.label(transcript, speaker_turns(job, hints), hints)


def speaker_turns(job: Job, hints: speakers.Hints) -> speakers.Found:
    """Who spoke when in the job's audio (the transcript is not needed: a stream finds them while the model
    decodes), timed as the `diarize` stage."""
    with DIARIZE_AT_ONCE:
        began = time.monotonic()
        found = speakers.find_turns(job.audio, hints)
    observe_stage("diarize", time.monotonic() - began)
    return found


def segments_through(job: Job, index: int) -> list[Segment]:
    """The segments of windows 0..index, all final once window `index`'s event has come."""
    return [s for i in range(index + 1) for s in job.window_segments(i)]


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


STREAM_POLL_SECONDS = 0.25  # how often a stream waiting for its next window looks for a hung-up client


def stream_events(job: Job) -> Iterator[int]:
    """Each window's index as it finishes, in order, until the job is done; then its error, if any.

    A client that hangs up is seen while the stream waits for a window (the socket probe), not only at the
    next write, which may be a window later; either way the job is cancelled."""
    disconnected = client_disconnected(request.environ)
    try:
        while True:
            try:
                kind, index = job.events.get(timeout=STREAM_POLL_SECONDS)
            except queue.Empty:
                if disconnected():
                    scheduler().cancel(job, "disconnect")
                elif time.monotonic() > job.deadline:
                    scheduler().cancel(job, "timeout")
                continue  # a cancellation queues a "done" event
            if kind == "done":
                break
            yield index
    finally:
        if not job.done.is_set():
            scheduler().cancel(job, "disconnect")
    if job.error:
        raise job.error
