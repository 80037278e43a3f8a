"""Cross-cutting HTTP concerns: health probes, API keys, request ids, metrics, one log line per request."""

from __future__ import annotations

import hmac
import json
import logging
import os
import sys
import time
import uuid

from flask import Flask, current_app, g, request

from . import __version__, metrics
from .errors import Unauthorized, Unavailable, response
from .openapi import openapi_json
from .scheduler import Health

log = logging.getLogger("service.request")
OPEN_PATHS = ("/healthz", "/readyz", "/openapi.json")  # reachable without an API key


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def register(app: Flask) -> None:
    app.before_request(_start)
    app.before_request(_authenticate)
    app.after_request(_finish)
    app.teardown_request(_teardown)
    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/readyz", "readyz", readyz)
    app.add_url_rule("/openapi.json", "openapi", openapi_json)
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
    metrics.BUILD_INFO.labels(
        __version__, engine.model_name, engine.name, engine.device, engine.precision
    ).set(1)


def _start() -> None:
    g.started = time.monotonic()
    g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
    metrics.IN_FLIGHT.inc()
    g.in_flight = True


def _authenticate() -> None:
    keys = current_app.config["SETTINGS"].api_keys
    if not keys or request.path in OPEN_PATHS:
        return
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    # compare against every key, always, in constant time: no early exit that leaks which prefix matched
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode(), key.encode())
    if not matched:
        metrics.REJECTED.labels("unauthorized").inc()
        raise Unauthorized(
            "Missing or invalid API key: send it as 'Authorization: Bearer <key>'."
            if token or header
            else "This server requires an API key: send 'Authorization: Bearer <key>'."
        )


def _finish(resp):
    resp.headers["X-Request-ID"] = g.get("request_id", "")
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"
    labels = current_app.extensions["scheduler"].labels
    elapsed = time.monotonic() - g.get("started", time.monotonic())
    metrics.REQUESTS.labels(endpoint=endpoint, status=str(resp.status_code), **labels).inc()
    metrics.REQUEST_DURATION.labels(endpoint=endpoint, **labels).observe(elapsed)
    if resp.status_code >= 400 and resp.is_json:
        code = (resp.get_json(silent=True) or {}).get("error", {}).get("code") or str(resp.status_code)
        metrics.ERRORS.labels(code).inc()
    if endpoint not in ("/healthz", "/readyz"):
        _log_line(endpoint, resp.status_code, elapsed)
    return resp


def _log_line(endpoint: str, status: int, elapsed: float) -> None:
    job = g.get("job")
    line = {"request_id": g.get("request_id"), "method": request.method, "endpoint": endpoint,
            "status": status, "seconds": round(elapsed, 3)}  # fmt: skip
    if job is not None:
        line.update(audio_seconds=round(job.duration, 2), queue_seconds=round(job.queue_wait, 3),
                    inference_seconds=round(job.inference_seconds, 3), windows=len(job.windows))  # fmt: skip
    log.info(json.dumps(line))


def _teardown(error: BaseException | None) -> None:
    if g.pop("in_flight", False):
        metrics.IN_FLIGHT.dec()
