"""Every knob of the service, read once from the environment and validated at start (pydantic-settings).

Each knob is one field of `Settings`: its name, environment variable, type, default, rule and description
declared at once (`knob()`, knobs.py). `from_env()` reads the variables, docs/configuration.md is generated
from the same declarations (`python -m tools.configuration_docs`), and every module that needs a value takes
it from a Settings instance. A bad value raises `SettingsError`, whose message names the variable and a valid
example; the entry points print that one line and exit with status 2. Groups of knobs kept apart (live.py)
derive from `Knobs` and are mixed into Settings.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr, model_validator

from . import choices
from .decoding import DecodingSettings
from .jobs import JobsSettings
from .jobs_fleet import JobsFleetSettings
from .knobs import Knobs, knob, page_order
from .live import LiveSettings
from .live_decoding import LiveDecodingSettings
from .models import ModelsSettings
from .parse import (
    Rule,
    SettingsError,
    boolean,
    choice,
    directory,
    keys,
    names,
    number,
    tcp_port,
    text,
)
from .sizing import SizingSettings
from .speakers import SpeakersSettings

__all__ = ["DEFAULTS", "Settings", "SettingsError", "from_env"]


MODEL_DIR = str(Path.home() / ".cache" / "whisper")  # openai-whisper's and faster-whisper's default
LOOPBACK = "127.0.0.1"  # make run: only this machine; the image sets API_HOST and METRICS_HOST to 0.0.0.0


class Settings(
    DecodingSettings,
    LiveSettings,
    LiveDecodingSettings,
    ModelsSettings,
    SizingSettings,
    JobsSettings,
    JobsFleetSettings,
    SpeakersSettings,
    Knobs,
):  # the groups of the other modules
    # model
    whisper_model: str = knob(
        "WHISPER_MODEL",
        "turbo",
        Rule("turbo", constraints={"min_length": 1}, before=text.before),
        "An official name (downloaded when online) or a checkpoint path.",
    )
    whisper_model_dir: str = knob(
        "WHISPER_MODEL_DIR", MODEL_DIR, text, "Where official models live.", "~/.cache/whisper"
    )
    whisper_engine: choices.Engine = knob(
        "WHISPER_ENGINE", "openai-whisper", choice(tuple(choices.ENGINES)), " \\| ".join(choices.ENGINES)
    )
    whisper_device: choices.Device = knob(
        "WHISPER_DEVICE", "auto", choice(choices.DEVICES), " \\| ".join(choices.DEVICES)
    )
    whisper_compute_type: choices.ComputeType = knob(
        "WHISPER_COMPUTE_TYPE",
        "default",
        choice(choices.COMPUTE_TYPES),
        "faster-whisper's precision: " + ", ".join(choices.COMPUTE_TYPES),
    )
    cpu_threads: int = knob(
        "WHISPER_CPU_THREADS",
        0,
        number(int, 0, "2"),
        "Threads of one model on the CPU; unset, gunicorn gives each worker cores / workers. 0: torch's.",
        "cores / workers",
    )
    whisper_device_index: int = knob(
        "WHISPER_DEVICE_INDEX",
        0,
        number(int, 0, "1"),
        "The worker's GPU (cuda:N); gunicorn sets it for each worker (0, 1, ...): leave it unset.",
    )
    warmup: bool = knob("WARMUP", True, boolean, "One inference at start, before /readyz turns 200.")

    # http
    api_host: str = knob("API_HOST", LOOPBACK, text, "Address of the API; 0.0.0.0: every interface.")
    port: int = knob("PORT", 5000, tcp_port, "The API's TCP port.")
    metrics_port: int = knob(
        "METRICS_PORT", 9101, tcp_port, "Prometheus /metrics, served by the gunicorn master; 0: off."
    )
    metrics_host: str = knob("METRICS_HOST", LOOPBACK, text, "Address of /metrics; 0.0.0.0: every interface.")
    api_keys: tuple[SecretStr, ...] = knob(
        "API_KEYS",
        (),
        keys,
        "Comma-separated keys of 16+ characters (Bearer, or HTTP Basic's password); empty: none.",
    )
    model_aliases: tuple[str, ...] = knob(
        "MODEL_ALIASES",
        choices.OPENAI_AUDIO_MODELS,
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

    log_level: choices.LogLevel = knob(
        "LOG_LEVEL", "info", choice(choices.LOG_LEVELS), " \\| ".join(choices.LOG_LEVELS)
    )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @model_validator(mode="after")
    def _combinations(self) -> Settings:
        """What one knob's rule cannot see: bounds that depend on another knob."""
        if self.realtime_max_sessions >= self.threads:
            raise SettingsError(
                f"REALTIME_MAX_SESSIONS={self.realtime_max_sessions} must be below THREADS "
                f"({self.threads}): each live session holds a request thread, e.g. REALTIME_MAX_SESSIONS=8"
            )
        if self.queue_max_requests >= self.threads:
            raise SettingsError(
                f"QUEUE_MAX_REQUESTS={self.queue_max_requests} must be below THREADS ({self.threads}): "
                f"each request waits on a thread, e.g. QUEUE_MAX_REQUESTS={max(1, self.threads * 3 // 4)}"
            )
        if self.metrics_port and self.metrics_port == self.port:
            example = f"METRICS_PORT={type(self).model_fields['metrics_port'].default}"
            raise SettingsError(f"METRICS_PORT must differ from PORT ({self.port}), e.g. {example}")
        return self


# docker stop (the deploy's --stop-timeout, the cloud's startup.sh) waits GRACEFUL_TIMEOUT + this before it
# kills: the master's own exit after the drain. The one rule for every place that stops the container.
STOP_MARGIN_SECONDS = 5


def stop_timeout(graceful_timeout: float) -> int:
    """docker's --stop-timeout for a service draining for `graceful_timeout` seconds."""
    return int(graceful_timeout) + STOP_MARGIN_SECONDS


DEFAULTS = Settings()  # the declared defaults, where a module needs one as a value (Settings.x is not one)
FIELDS = page_order(
    Settings
)  # docs/configuration.md's order: this class's knobs, then decoding.py's, live.py's, models.py's


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment (or `environ`); raise SettingsError on the first bad value."""
    return Settings.from_env(environ)
