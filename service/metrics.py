"""Prometheus metrics. Whoever records imports the objects; the exporter serves them on METRICS_PORT.

Under gunicorn every worker writes to PROMETHEUS_MULTIPROC_DIR (wiped by the master before start) and the
master serves the aggregate. Gauge modes: queue and in-flight gauges are summed over live workers
(`livesum`: a dead worker's values vanish with it); model load time takes the max; build info is per process.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Speech runs from a word to hours: buckets from 10 ms to an hour (the library's default stops at 10 s).
_UNDER_A_MINUTE = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30)
DURATION_BUCKETS = (*_UNDER_A_MINUTE, 60, 120, 300, 600, 1200, 1800, 3600)
RTF_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
MODEL = ("model", "engine")

REQUESTS = Counter("whisper_requests", "HTTP requests served.", ("endpoint", "status", *MODEL))
REQUEST_DURATION = Histogram(
    "whisper_request_duration_seconds",
    "End-to-end request time.",
    ("endpoint", *MODEL),
    buckets=DURATION_BUCKETS,
)
STAGE_DURATION = Histogram(
    "whisper_stage_duration_seconds",
    "Time per request spent in each stage: queue_wait, audio_decode, inference, diarize, render.",
    ("stage", *MODEL),
    buckets=DURATION_BUCKETS,
)
AUDIO_SECONDS = Counter("whisper_audio_seconds", "Seconds of audio transcribed.", MODEL)
AUDIO_DURATION = Histogram(
    "whisper_audio_duration_seconds", "Audio length per request.", MODEL, buckets=DURATION_BUCKETS
)
REAL_TIME_FACTOR = Histogram(
    "whisper_real_time_factor",
    "Inference seconds per second of audio (lower is faster).",
    MODEL,
    buckets=RTF_BUCKETS,
)
BATCH_SIZE = Histogram("whisper_batch_size", "Windows per model call.", MODEL, buckets=BATCH_BUCKETS)
BATCH_REQUESTS = Histogram(
    "whisper_batch_requests", "Distinct requests sharing one model call.", MODEL, buckets=BATCH_BUCKETS
)
BATCH_DURATION = Histogram(
    "whisper_batch_duration_seconds",
    "Time of one model call (decode or detect_language).",
    ("kind", *MODEL),
    buckets=DURATION_BUCKETS,
)
QUEUE_DEPTH = Gauge("whisper_queue_depth", "Windows waiting for the model.", multiprocess_mode="livesum")
QUEUE_AUDIO = Gauge(
    "whisper_queue_audio_seconds",
    "Audio seconds accepted and not finished.",
    multiprocess_mode="livesum",
)
IN_FLIGHT = Gauge("whisper_requests_in_flight", "Requests being handled.", multiprocess_mode="livesum")
INTAKE = Gauge(
    "whisper_requests_in_intake",
    "Requests admitted whose audio is still being decoded and planned (a small batch may wait for them).",
    multiprocess_mode="livesum",
)
UPLOADS_IN_PROGRESS = Gauge(
    "whisper_uploads_in_progress",
    "Request bodies being read (each holds an upload slot).",
    multiprocess_mode="livesum",
)
REALTIME_SESSIONS = Gauge(
    "whisper_realtime_sessions",
    "Live transcription sessions open (/v1/realtime).",
    multiprocess_mode="livesum",
)
REALTIME_FINALISATION = Histogram(
    "whisper_realtime_finalisation_seconds",
    "From the end of a live turn (speech_stopped or commit) to its completed transcript.",
    buckets=_UNDER_A_MINUTE,
)
REJECTED = Counter("whisper_rejected_requests", "Requests refused before work started.", ("reason",))
# per API key, labelled by its id (a hash prefix, never the key): see service/batching/fairshare.py
KEY_ACCEPTED = Counter(
    "whisper_key_accepted_requests", "Requests accepted into the queue, per API key.", ("key_id",)
)
KEY_REJECTED = Counter(
    "whisper_key_rejected_requests",
    "Requests refused with 429 or 503, per API key and reason.",
    ("key_id", "reason"),
)
KEY_IN_FLIGHT = Gauge(
    "whisper_key_requests_in_flight",
    "Requests accepted and not finished, per API key.",
    ("key_id",),
    multiprocess_mode="livesum",
)
CANCELLED = Counter("whisper_cancelled_requests", "Accepted requests abandoned.", ("reason",))
CANCELLED_WINDOWS = Counter("whisper_cancelled_windows", "Windows dropped undecoded by cancellation.")
# renamed to say what it counts: a recording rule (monitoring/prometheus/rules) keeps its old name
REDECODED_RESTS = Counter(
    "whisper_redecoded_rests", "Rests of windows decoded again after the model stopped early.", MODEL
)
REST_INPUTS = Counter(
    "whisper_rest_inputs",
    "Model inputs that held rests of windows (rests are packed, several to one).",
    MODEL,
)
SPEECH_RATIO = Histogram(
    "whisper_speech_ratio",
    "Share of a request's audio that VAD kept as speech.",
    MODEL,
    buckets=(0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1),
)
ERRORS = Counter("whisper_errors", "Errors returned, by type.", ("type",))
MODEL_LOAD = Gauge("whisper_model_load_seconds", "Time to load and warm the model.", multiprocess_mode="max")
MODEL_READY = Gauge(
    "whisper_model_ready", "Workers whose model is loaded and warm.", multiprocess_mode="livesum"
)
MODEL_LOADED = Gauge(  # MODELS' models (batching/registry.py): 1 while loaded, 0 once unloaded
    "whisper_model_loaded", "Workers holding this MODELS model.", MODEL, multiprocess_mode="livesum"
)
GPU_ALLOCATED = Gauge(
    "whisper_gpu_memory_allocated_bytes",
    "GPU memory held by tensors.",
    ("device",),
    multiprocess_mode="livesum",
)
GPU_RESERVED = Gauge(
    "whisper_gpu_memory_reserved_bytes",
    "GPU memory reserved by the caching allocator.",
    ("device",),
    multiprocess_mode="livesum",
)
BUILD_INFO = Gauge(
    "whisper_build_info",
    "Version, model, engine, device and precision; always 1.",
    ("version", "model", "engine", "device", "precision"),
    multiprocess_mode="max",
)


def render() -> tuple[bytes, str]:
    """The exposition text: all workers' metrics in multiprocess mode, this process's otherwise."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
