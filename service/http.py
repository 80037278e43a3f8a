"""Cross-cutting HTTP concerns: health probes, API keys, request ids, metrics, one log line per request."""

from __future__ import annotations

import base64
import binascii
import hashlib
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
OPEN_BLUEPRINTS = ("web",)  # the page at /, /docs and their static files; the API they call wants the key


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
    if not keys or request.path in OPEN_PATHS or request.blueprint in OPEN_BLUEPRINTS:
        return
    header = request.headers.get("Authorization", "")
    # compare against every key, always, in constant time: no early exit that leaks which prefix matched
    matched = None
    for token in _credentials(header):
        for key in keys:
            if hmac.compare_digest(token.encode(), key.encode()):
                matched = key
    if matched is not None:
        g.key_id = key_id(matched)
    else:
        metrics.REJECTED.labels("unauthorized").inc()
        raise Unauthorized(
            "Missing or invalid API key: send it as 'Authorization: Bearer <key>' or as the password of "
            "HTTP Basic (http://user:<key>@host/)."
            if header
            else "This server requires an API key: send 'Authorization: Bearer <key>', or put it in the URL "
            "as a password (http://user:<key>@host/) where a client has no key setting."
        )


def key_id(key: str) -> str:
    """A key's id in metrics and the fair share: the first 10 hex digits of its SHA-256, never the key.
    An operator finds a key's id with `printf %s "$KEY" | sha256sum | cut -c1-10`."""
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def _credentials(header: str) -> list[str]:
    """The API key candidates in an Authorization header: a Bearer token, or HTTP Basic's password (what a
    URL such as http://whisper:KEY@host:9000 sends; whisper-asr-webservice clients like Bazarr have no key
    setting) or, with an empty password, its user name (http://KEY@host:9000)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return [value.strip()]
    if scheme.lower() != "basic":
        return [""]
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return [""]
    return [password or user]


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
        if g.get("key_id") and resp.status_code in (429, 503):
            metrics.KEY_REJECTED.labels(g.key_id, code).inc()
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
