"""Health probes: /healthz (the process answers) and /readyz (the model is loaded and warm), and the build
info metric."""

from __future__ import annotations

import os

from flask import Flask, current_app

from .. import __version__, metrics
from ..batching.scheduler import Health
from ..errors import Unavailable, response

PATHS = ("/healthz", "/readyz")  # reachable without an API key, and left out of the request log


def register(app: Flask) -> None:
    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/readyz", "readyz", readyz)
    _publish_build_info(app)


def healthz():
    """Liveness: the process answers. Never touches the model."""
    return {"status": "ok"}


def readyz():
    """Readiness: 200 only once the model is loaded and warm; 503 with the reason otherwise."""
    scheduler = current_app.extensions["scheduler"]
    if scheduler.ready:
        engine = scheduler.engine
        # WHISPER_BUILD: the image tag (Dockerfile build arg), so a deploy can check what it is served.
        build = os.environ.get("WHISPER_BUILD", "")
        return {"status": "ready", "model": engine.model_name, "engine": engine.name, "build": build}
    retry = None if scheduler.health is Health.FAILED else 5
    error = Unavailable(scheduler.reason, code=scheduler.health.value, retry_after=retry)
    return response(error)


def _publish_build_info(app: Flask) -> None:
    engine = app.extensions["scheduler"].engine
    labels = (__version__, engine.model_name, engine.name, engine.device, engine.precision)
    metrics.BUILD_INFO.labels(*labels).set(1)
