"""Every knob of the service, read once from the environment and validated at start.

A bad value raises `SettingsError`, whose message names the variable and a valid example; the entry points
print that one line and exit with status 2.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENGINES = ("openai-whisper", "faster-whisper")  # service.engines.ENGINES registers each
DEVICES = ("auto", "cpu", "cuda")
DECODE_MODES = ("batched", "sequential")
# OpenAI's transcription model names (openai 3.57's types/audio_model.py AudioModel, less the diarizing model,
# which would promise speaker labels): clients that hard-code one of them reach the loaded model
OPENAI_AUDIO_MODELS = (
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-transcribe",
)


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable and a valid example."""


@dataclass(frozen=True)
class Settings:
    # model
    whisper_model: str = "turbo"  # official name (downloaded when online) or a checkpoint path
    whisper_model_dir: str = str(Path.home() / ".cache" / "whisper")  # where official models live
    whisper_engine: str = "openai-whisper"  # openai-whisper | faster-whisper
    whisper_device: str = "auto"  # auto | cpu | cuda
    whisper_compute_type: str = "default"  # faster-whisper: float16, int8_float16, int8, float32
    cpu_threads: int = 0  # threads of one model on the CPU; 0 = the library's default
    warmup: bool = True  # one inference at start, before /readyz turns 200

    # http
    port: int = 5000
    metrics_port: int = 9101  # Prometheus /metrics, served by the gunicorn master on its own port
    metrics_host: str = "0.0.0.0"  # noqa: S104 - publish as 127.0.0.1:9101 on the host
    api_keys: tuple[str, ...] = ()  # empty: no authentication (Bearer, or the password of HTTP Basic)
    model_aliases: tuple[str, ...] = OPENAI_AUDIO_MODELS  # more names for the loaded model in /v1/...
    workers: int = 0  # gunicorn workers; 0 = one per GPU (1 on CPU)
    threads: int = 32  # request threads per worker (they wait on the scheduler, not the CPU)
    graceful_timeout: float = 120.0  # seconds in-flight requests get after SIGTERM

    # limits
    max_upload_mb: float = 100.0  # multipart body cap; bigger uploads get 413 before being read
    max_audio_seconds: float = 3 * 3600.0  # decoded duration cap
    ffmpeg_timeout: float = 120.0  # seconds one decode may take
    tmp_dir: str = tempfile.gettempdir()  # uploads are streamed here, then deleted

    # slow clients (see service/intake_guard.py)
    header_timeout: float = 20.0  # seconds from a connection's first byte to the end of its request headers
    upload_idle_timeout: float = 30.0  # seconds an upload may send nothing before it is cut off with 408
    upload_min_rate: float = 1024.0  # bytes per second an upload must average once the grace period is over
    upload_rate_grace: float = 10.0  # seconds an upload may go below UPLOAD_MIN_RATE after it starts
    upload_slots: int = 256  # request bodies read at once per worker, each on its own thread; more get 503

    # scheduler
    decode_mode: str = "batched"  # batched | sequential (openai-whisper's transcribe())
    batch_size: int = 0  # windows per model call; 0 = per device (16 on CUDA, 8 on CPU)
    # how long a batch smaller than batch_size may wait for requests whose audio is still being decoded
    batch_wait_ms: int = 250
    beam_size: int = 1  # beam width at temperature 0 for a request that does not choose; 1 = greedy
    queue_max_seconds: float = 4 * 3600.0  # audio seconds accepted but not yet finished
    # requests accepted but not yet finished; keep it below THREADS: each waits on a request thread, so a
    # larger bound is never reached and excess requests queue unseen in gunicorn instead of getting 429
    queue_max_requests: int = 24
    key_max_share: float = 0.5  # with API_KEYS: the fraction of both queue bounds one key may hold
    request_timeout: float = 120.0  # seconds of deadline for any request ...
    request_timeout_per_audio_second: float = 1.0  # ... plus this many per second of audio
    force_tokens: int = 0  # benchmark only: decode exactly N tokens per window (0 = off)

    # voice activity detection (intake/vad.py): only speech is decoded
    vad: bool = True  # the default for requests that do not choose (chunking_strategy, vad_filter)
    vad_threshold: float = 0.5  # Silero speech probability
    vad_min_silence_ms: int = 1000  # a pause this long ends a speech region
    vad_speech_pad_ms: int = 400  # audio kept on each side of a speech region

    log_level: str = "info"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _choice(options: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise SettingsError(f"{name}={raw!r} is invalid: use one of {', '.join(options)}")
        return value

    return parse


def _number(kind: type, minimum: float, example: str) -> Callable[[str, str], Any]:
    def parse(name: str, raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a number, e.g. {name}={example}") from None
        if value < minimum:
            raise SettingsError(f"{name}={raw!r} must be >= {minimum}, e.g. {name}={example}")
        return value

    return parse


def _share(name: str, raw: str) -> float:
    value = _number(float, 0, "0.5")(name, raw)
    if not 0 < value <= 1:
        raise SettingsError(f"{name}={raw!r} is not a fraction in (0, 1], e.g. {name}=0.5")
    return value


def _port(name: str, raw: str) -> int:
    value = _number(int, 0, "5000")(name, raw)
    if value > 65535:
        raise SettingsError(f"{name}={raw!r} is not a TCP port, e.g. {name}=5000")
    return value


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean, e.g. {name}=true")


def _keys(name: str, raw: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if any(len(k) < 16 for k in keys):
        raise SettingsError(
            f"{name}: each key needs at least 16 characters, e.g. {name}=$(openssl rand -hex 24)"
        )
    return keys


def _names(name: str, raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if any(not n.isprintable() or " " in n or "/" in n for n in names):
        raise SettingsError(
            f"{name}: names without spaces or slashes, e.g. {name}=whisper-1,gpt-4o-transcribe"
        )
    return names


def _directory(name: str, raw: str) -> str:
    if not os.path.isdir(raw):
        raise SettingsError(f"{name}={raw!r} is not an existing directory, e.g. {name}=/tmp")
    return raw


# environment variable -> (field, parser)
_PARSERS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "WHISPER_MODEL": ("whisper_model", _text),
    "WHISPER_MODEL_DIR": ("whisper_model_dir", _text),
    "WHISPER_ENGINE": ("whisper_engine", _choice(ENGINES)),
    "WHISPER_DEVICE": ("whisper_device", _choice(DEVICES)),
    "WHISPER_COMPUTE_TYPE": ("whisper_compute_type", _text),
    "WHISPER_CPU_THREADS": ("cpu_threads", _number(int, 0, "2")),
    "WARMUP": ("warmup", _bool),
    "PORT": ("port", _port),
    "METRICS_PORT": ("metrics_port", _port),
    "METRICS_HOST": ("metrics_host", _text),
    "API_KEYS": ("api_keys", _keys),
    "MODEL_ALIASES": ("model_aliases", _names),
    "WORKERS": ("workers", _number(int, 0, "1")),
    "THREADS": ("threads", _number(int, 1, "32")),
    "GRACEFUL_TIMEOUT": ("graceful_timeout", _number(float, 1, "120")),
    "MAX_UPLOAD_MB": ("max_upload_mb", _number(float, 0.001, "100")),
    "MAX_AUDIO_SECONDS": ("max_audio_seconds", _number(float, 1, "10800")),
    "FFMPEG_TIMEOUT": ("ffmpeg_timeout", _number(float, 1, "120")),
    "TMPDIR": ("tmp_dir", _directory),
    "HEADER_TIMEOUT": ("header_timeout", _number(float, 1, "20")),
    "UPLOAD_IDLE_TIMEOUT": ("upload_idle_timeout", _number(float, 1, "30")),
    "UPLOAD_MIN_RATE": ("upload_min_rate", _number(float, 0, "1024")),
    "UPLOAD_RATE_GRACE": ("upload_rate_grace", _number(float, 0, "10")),
    "UPLOAD_SLOTS": ("upload_slots", _number(int, 1, "256")),
    "DECODE_MODE": ("decode_mode", _choice(DECODE_MODES)),
    "BATCH_SIZE": ("batch_size", _number(int, 0, "16")),
    "BATCH_WAIT_MS": ("batch_wait_ms", _number(int, 0, "250")),
    "BEAM_SIZE": ("beam_size", _number(int, 1, "5")),
    "QUEUE_MAX_SECONDS": ("queue_max_seconds", _number(float, 1, "14400")),
    "QUEUE_MAX_REQUESTS": ("queue_max_requests", _number(int, 1, "24")),
    "KEY_MAX_SHARE": ("key_max_share", _share),
    "REQUEST_TIMEOUT": ("request_timeout", _number(float, 1, "120")),
    "REQUEST_TIMEOUT_PER_AUDIO_SECOND": (
        "request_timeout_per_audio_second",
        _number(float, 0, "1.0"),
    ),
    "WHISPER_FORCE_TOKENS": ("force_tokens", _number(int, 0, "96")),
    "LOG_LEVEL": ("log_level", _choice(("debug", "info", "warning", "error"))),
    "VAD": ("vad", _bool),
    "VAD_THRESHOLD": ("vad_threshold", _number(float, 0.01, "0.5")),
    "VAD_MIN_SILENCE_MS": ("vad_min_silence_ms", _number(int, 0, "1000")),
    "VAD_SPEECH_PAD_MS": ("vad_speech_pad_ms", _number(int, 0, "400")),
}

COMPUTE_TYPES = (
    "default",
    "float16",
    "int8_float16",
    "int8",
    "int8_float32",
    "float32",
    "bfloat16",
)


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment; raise SettingsError on the first bad value."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, (attr, parse) in _PARSERS.items():
        raw = environ.get(name)
        if raw is not None and raw != "":
            values[attr] = parse(name, raw)
    settings = Settings(**values)
    _check_combinations(settings)
    return settings


MAX_BEAM_SIZE = 16  # the widest beam a request (fields.py) or BEAM_SIZE may ask for


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
    if settings.metrics_port and settings.metrics_port == settings.port:
        raise SettingsError(f"METRICS_PORT must differ from PORT ({settings.port}), e.g. METRICS_PORT=9101")
