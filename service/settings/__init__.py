"""Every knob of the service, read once from the environment and validated at start.

Each knob is one field of `Settings`, declared once with its environment variable, default, parser and
description (`knob()`): `from_env()` reads the variables, docs/configuration.md is generated from the same
declarations (`python -m tools.configuration_docs`), and every module that needs a value takes it from a
Settings instance. A bad value raises `SettingsError`, whose message names the variable and a valid example;
the entry points print that one line and exit with status 2.

(pydantic-settings was considered: it would add a dependency to the image and the gunicorn master, and its
errors are multi-line reports without the example this service prints.)
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .jobs import JobsSettings
from .jobs_fleet import JobsFleetSettings
from .knobs import knob
from .live import LiveSettings
from .parse import SettingsError, boolean, choice, directory, fraction, keys, names, number, tcp_port, text

__all__ = ["Settings", "SettingsError", "from_env"]


# WHISPER_ENGINE -> its module in service/engines/, which is also whisper-asr-webservice's ASR_ENGINE name
ENGINES = {"openai-whisper": "openai_whisper", "faster-whisper": "faster_whisper"}
DEVICES = ("auto", "cpu", "cuda")
# BATCH_SIZE=0: windows per model call on each kind of device. CTranslate2 on a CPU gains nothing from a
# batch, which only makes a clip wait behind a long file's windows; torch on a CPU does (docs/performance.md).
DEVICE_BATCH_SIZES = {"cuda": 16, "cpu": 8, "cpu/faster-whisper": 1}
DECODE_MODES = ("batched", "sequential")
LOG_LEVELS = ("debug", "info", "warning", "error")
COMPUTE_TYPES = ("default", "float16", "int8_float16", "int8", "int8_float32", "float32", "bfloat16")
MAX_BEAM_SIZE = 16  # the widest beam a request (api/openai_fields.py) or BEAM_SIZE may ask for
# OpenAI's transcription model names (openai 3.63's types/audio_model.py AudioModel; the diarizing model's
# speakers come from service/speakers): clients that hard-code one of them reach the loaded model
OPENAI_AUDIO_MODELS = (
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-transcribe",
    "gpt-4o-transcribe-diarize",
)


MODEL_DIR = str(Path.home() / ".cache" / "whisper")  # openai-whisper's and faster-whisper's default
LOOPBACK = "127.0.0.1"  # make run: only this machine; the image sets API_HOST and METRICS_HOST to 0.0.0.0
_PER_DEVICE = "16 on cuda, 8 on cpu (faster-whisper on cpu: 1)"


@dataclass(frozen=True)
class Settings(JobsSettings, LiveSettings, JobsFleetSettings):  # mixins: jobs.py, live.py, jobs_fleet.py
    # model
    whisper_model: str = knob(
        "WHISPER_MODEL", "turbo", text, "An official name (downloaded when online) or a checkpoint path."
    )
    whisper_model_dir: str = knob(
        "WHISPER_MODEL_DIR", MODEL_DIR, text, "Where official models live.", "~/.cache/whisper"
    )
    whisper_engine: str = knob(
        "WHISPER_ENGINE", "openai-whisper", choice(tuple(ENGINES)), " \\| ".join(ENGINES)
    )
    whisper_device: str = knob("WHISPER_DEVICE", "auto", choice(DEVICES), " \\| ".join(DEVICES))
    whisper_compute_type: str = knob(
        "WHISPER_COMPUTE_TYPE", "default", text, "faster-whisper's precision: " + ", ".join(COMPUTE_TYPES)
    )
    cpu_threads: int = knob(
        "WHISPER_CPU_THREADS", 0, number(int, 0, "2"), "Threads of one model on the CPU; 0: the library's."
    )
    warmup: bool = knob("WARMUP", True, boolean, "One inference at start, before /readyz turns 200.")

    # http
    api_host: str = knob("API_HOST", LOOPBACK, text, "Address of the API; 0.0.0.0: every interface.")
    port: int = knob("PORT", 5000, tcp_port, "The API's TCP port.")
    metrics_port: int = knob(
        "METRICS_PORT", 9101, tcp_port, "Prometheus /metrics, served by the gunicorn master; 0: off."
    )
    metrics_host: str = knob("METRICS_HOST", LOOPBACK, text, "Address of /metrics; 0.0.0.0: every interface.")
    api_keys: tuple[str, ...] = knob(
        "API_KEYS",
        (),
        keys,
        "Comma-separated keys of 16+ characters (Bearer, or HTTP Basic's password); empty: none.",
    )
    model_aliases: tuple[str, ...] = knob(
        "MODEL_ALIASES",
        OPENAI_AUDIO_MODELS,
        names,
        "More names for the loaded model in /v1/... (comma-separated).",
    )
    workers: int = knob("WORKERS", 0, number(int, 0, "1"), "gunicorn workers; 0: one per GPU (1 on CPU).")
    threads: int = knob(
        "THREADS",
        32,
        number(int, 1, "32"),
        "Request threads per worker (they wait on the scheduler, not the CPU).",
    )
    graceful_timeout: float = knob(
        "GRACEFUL_TIMEOUT",
        120.0,
        number(float, 1, "120"),
        "Seconds in-flight and queued requests get to finish after SIGTERM.",
    )

    # limits
    max_upload_mb: float = knob(
        "MAX_UPLOAD_MB",
        100.0,
        number(float, 0.001, "100"),
        "Multipart body cap (MiB); bigger uploads get 413 before being read.",
    )
    max_audio_seconds: float = knob(
        "MAX_AUDIO_SECONDS", 10800.0, number(float, 1, "10800"), "Decoded duration cap, in seconds."
    )
    ffmpeg_timeout: float = knob(
        "FFMPEG_TIMEOUT", 120.0, number(float, 1, "120"), "Seconds one decode may take."
    )
    decode_slots: int = knob("DECODE_SLOTS", 4, number(int, 1, "4"), "ffmpeg decodes at once per worker.")
    tmp_dir: str = knob(
        "TMPDIR",
        tempfile.gettempdir(),
        directory,
        "Uploads are streamed here, then deleted.",
        "the system's temporary directory",
    )

    # slow clients (service/server/)
    header_timeout: float = knob(
        "HEADER_TIMEOUT",
        20.0,
        number(float, 1, "20"),
        "Seconds from a connection's first byte to the end of its request headers.",
    )
    upload_idle_timeout: float = knob(
        "UPLOAD_IDLE_TIMEOUT",
        30.0,
        number(float, 1, "30"),
        "Seconds an upload may send nothing before it is cut off with 408.",
    )
    upload_min_rate: float = knob(
        "UPLOAD_MIN_RATE",
        1024.0,
        number(float, 0, "1024"),
        "Bytes per second an upload must average once UPLOAD_RATE_GRACE is over.",
    )
    upload_rate_grace: float = knob(
        "UPLOAD_RATE_GRACE",
        10.0,
        number(float, 0, "10"),
        "Seconds an upload may stay below UPLOAD_MIN_RATE after it starts.",
    )
    upload_slots: int = knob(
        "UPLOAD_SLOTS",
        256,
        number(int, 1, "256"),
        "Request bodies read at once per worker, each on a thread; more get 503.",
    )

    # scheduler
    decode_mode: str = knob(
        "DECODE_MODE",
        "batched",
        choice(DECODE_MODES),
        "batched \\| sequential (openai-whisper's transcribe()), unless a request chooses.",
    )
    batch_size: int = knob("BATCH_SIZE", 0, number(int, 0, "16"), "Windows per model call; 0: " + _PER_DEVICE)
    batch_wait_ms: int = knob(
        "BATCH_WAIT_MS",
        250,
        number(int, 0, "250"),
        "How long a batch under BATCH_SIZE waits for requests still decoding their audio.",
    )
    beam_size: int = knob(
        "BEAM_SIZE", 1, number(int, 1, "5"), "Beam width when a request does not choose; 1: greedy."
    )
    untimed_decoding: bool = knob(
        "UNTIMED_DECODING",
        True,
        boolean,
        "json/text/txt responses: decode without timestamp tokens, as faster-whisper's batched pipeline.",
    )
    untimed_beam_size: int = knob(
        "UNTIMED_BEAM_SIZE",
        0,
        number(int, 0, "5"),
        "Untimed decoding's beam width unless a request chooses; 0: 5 on faster-whisper, else BEAM_SIZE.",
    )
    queue_max_seconds: float = knob(
        "QUEUE_MAX_SECONDS",
        14400.0,
        number(float, 1, "14400"),
        "Audio seconds accepted but not yet finished; more get 429.",
    )
    queue_max_requests: int = knob(
        "QUEUE_MAX_REQUESTS",
        24,
        number(int, 1, "24"),
        "Requests accepted but not finished; keep it below THREADS, else excess queue unseen.",
    )
    key_max_share: float = knob(
        "KEY_MAX_SHARE", 0.5, fraction, "With API_KEYS: the fraction of both queue bounds one key may hold."
    )
    request_timeout: float = knob(
        "REQUEST_TIMEOUT", 120.0, number(float, 1, "120"), "Seconds of deadline for any request ..."
    )
    request_timeout_per_audio_second: float = knob(
        "REQUEST_TIMEOUT_PER_AUDIO_SECOND",
        1.0,
        number(float, 0, "1.0"),
        "... plus this many per audio second.",
    )
    force_tokens: int = knob(
        "WHISPER_FORCE_TOKENS",
        0,
        number(int, 0, "96"),
        "Benchmarks only: decode exactly N tokens per window; 0: off.",
    )

    # voice activity detection (intake/vad.py): only speech is decoded
    vad: bool = knob(
        "VAD",
        True,
        boolean,
        "Decode only speech, for requests that do not choose (chunking_strategy, vad_filter).",
    )
    vad_threshold: float = knob(
        "VAD_THRESHOLD", 0.5, number(float, 0.01, "0.5"), "Silero speech probability."
    )
    vad_min_silence_ms: int = knob(
        "VAD_MIN_SILENCE_MS", 1000, number(int, 0, "1000"), "A pause this long ends a speech region."
    )
    vad_speech_pad_ms: int = knob(
        "VAD_SPEECH_PAD_MS", 400, number(int, 0, "400"), "Audio kept on each side of a speech region."
    )

    log_level: str = knob("LOG_LEVEL", "info", choice(LOG_LEVELS), " \\| ".join(LOG_LEVELS))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def batch_size_on(self, device: str) -> int:
        """BATCH_SIZE, or the default for the device ("cpu", "cuda", "cuda:1") and the engine."""
        kind = "cuda" if device.startswith("cuda") else f"cpu/{self.whisper_engine}"
        return self.batch_size or DEVICE_BATCH_SIZES.get(kind, DEVICE_BATCH_SIZES["cpu"])

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


MIXINS = (LiveSettings, JobsSettings, JobsFleetSettings)  # docs/configuration.md: Settings', then these
_MIXED = {name for mixin in MIXINS for name in mixin.__dataclass_fields__}
FIELDS = (
    *(f for f in dataclasses.fields(Settings) if f.name not in _MIXED),
    *(f for m in MIXINS for f in dataclasses.fields(m)),
)


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment; raise SettingsError on the first bad value."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in FIELDS:
        raw = environ.get(f.metadata["env"])
        if raw is not None and raw != "":
            values[f.name] = f.metadata["parse"](f.metadata["env"], raw)
    settings = Settings(**values)
    _check_combinations(settings)
    return settings


def _check_combinations(settings: Settings) -> None:
    if settings.whisper_compute_type not in COMPUTE_TYPES:
        raise SettingsError(
            f"WHISPER_COMPUTE_TYPE={settings.whisper_compute_type!r} is invalid: "
            f"use one of {', '.join(COMPUTE_TYPES)}"
        )
    if not settings.whisper_model.strip():
        raise SettingsError("WHISPER_MODEL is empty, e.g. WHISPER_MODEL=turbo")
    if settings.beam_size > MAX_BEAM_SIZE:
        raise SettingsError(
            f"BEAM_SIZE={settings.beam_size} must be at most {MAX_BEAM_SIZE}, e.g. BEAM_SIZE=5"
        )
    if settings.vad_threshold >= 1:
        raise SettingsError(f"VAD_THRESHOLD={settings.vad_threshold} must be below 1, e.g. VAD_THRESHOLD=0.5")
    if settings.realtime_max_sessions >= settings.threads:
        raise SettingsError(
            f"REALTIME_MAX_SESSIONS={settings.realtime_max_sessions} must be below THREADS "
            f"({settings.threads}): each live session holds a request thread, e.g. REALTIME_MAX_SESSIONS=8"
        )
    if settings.metrics_port and settings.metrics_port == settings.port:
        raise SettingsError(f"METRICS_PORT must differ from PORT ({settings.port}), e.g. METRICS_PORT=9101")
