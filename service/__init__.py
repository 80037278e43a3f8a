"""An OpenAI-compatible Whisper service. `create_app()` builds the Flask app; gunicorn.conf.py serves it.

Imports stay inside create_app so that the gunicorn master (which reads service.settings) never loads
torch: only the workers, one per GPU, do.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

# onnxruntime (Silero VAD, faster-whisper's VAD) 1.32 ships Microsoft's 1DS telemetry on Linux: at import it
# writes a session file ($TMPDIR/.ses) and its collector posts events to mobile.events.data.microsoft.com.
# A self-hosted transcription service sends nothing out: off before anything imports it (docs/security.md).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def _version() -> str:
    """pyproject.toml's version: from the installed package's metadata (make install), else from the file
    itself (the image copies service/ and pyproject.toml without installing them)."""
    try:
        return metadata.version("whisper-gpu-service")
    except metadata.PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]


__version__ = _version()


def create_app(settings=None, *, device_index: int | None = None):
    """Build the app: settings, errors, auth, health, the two API faces, and the inference scheduler."""
    from . import settings as settings_module
    from . import speakers
    from .batching.scheduler import Scheduler
    from .engines import create_engine
    from .intake import vad
    from .server import request_log

    settings = settings or settings_module.from_env()
    request_log.configure_logging(settings.log_level)
    if device_index is None:
        device_index = settings.whisper_device_index  # gunicorn.conf.py's post_fork sets it per worker
    if settings.vad:
        vad.load()  # the Silero model, before the first request needs it
    speakers.configure(settings, device_index)  # DIARIZATION_BACKEND=pyannote: its pipeline, loaded now
    scheduler = Scheduler(create_engine(settings, device_index=device_index), settings)
    app = _flask_app(settings, scheduler, device_index)
    scheduler.start()
    app.extensions["models"].start()
    _start_jobs(app, settings)
    return app


def _start_jobs(app, settings) -> None:
    """Background jobs (service/jobs): the store, this worker's runner threads and housekeeping."""
    from .jobs.backends import open_store
    from .jobs.housekeeping import Housekeeping
    from .jobs.runner import Runner

    store = app.extensions["jobs"] = open_store(settings)
    app.extensions["jobs_runner"] = Runner(app, store, settings)
    app.extensions["jobs_housekeeping"] = Housekeeping(store, settings)
    app.extensions["jobs_runner"].start()
    app.extensions["jobs_housekeeping"].start()


def _flask_app(settings, scheduler, device_index: int = 0):
    """The Flask app around the scheduler (and MODELS' others): the server's own hooks first, then the API
    faces and the page."""
    from flask import Flask

    from . import errors, web
    from .api import asr, jobs, openai, openapi, pipeline, realtime
    from .batching.registry import Registry
    from .server import auth, headers, probes, request_log
    from .server.upload_limits import IntakeGuard

    app = Flask(__name__)
    app.extensions["models"] = Registry(scheduler, settings, device_index)  # MODELS (docs/models.md)
    app.config.update(
        SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,  # werkzeug answers 413 before reading a bigger body
        MAX_FORM_MEMORY_SIZE=1024 * 1024,  # text fields; files stream to disk
        JSON_SORT_KEYS=False,
    )
    app.extensions["scheduler"] = scheduler
    errors.register(app)
    request_log.register(app)
    headers.register(app)
    auth.register(app)
    probes.register(app)
    app.add_url_rule("/openapi.json", "openapi", openapi.openapi_json)
    app.teardown_request(pipeline.intake_over)  # a request that fails while decoding its audio
    app.register_blueprint(openai.bp)
    app.register_blueprint(asr.bp)
    app.register_blueprint(jobs.bp)
    realtime.register(app)  # /v1/realtime: a WebSocket
    app.register_blueprint(web.bp)
    app.wsgi_app = IntakeGuard(app.wsgi_app, settings)  # request bodies: deadlines, minimum rate, slots
    return app
