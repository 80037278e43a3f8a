"""Every request: its id (X-Request-ID), its metrics (count, duration, errors, in flight) and one structured
log line."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid

from flask import Flask, current_app, g, request

from .. import metrics
from . import probes

log = logging.getLogger("service.request")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def register(app: Flask) -> None:
    """First of the app's hooks: every request has its id and start time before anything can refuse it."""
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_teardown)


def _start() -> None:
    g.started = time.monotonic()
    g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
    metrics.IN_FLIGHT.inc()
    g.in_flight = True


def _finish(resp):
    resp.headers["X-Request-ID"] = g.get("request_id", "")
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"
    labels = (g.get("scheduler") or current_app.extensions["scheduler"]).labels  # the request's model
    elapsed = time.monotonic() - g.get("started", time.monotonic())
    metrics.REQUESTS.labels(endpoint=endpoint, status=str(resp.status_code), **labels).inc()
    metrics.REQUEST_DURATION.labels(endpoint=endpoint, **labels).observe(elapsed)
    if resp.status_code >= 400 and resp.is_json:
        code = (resp.get_json(silent=True) or {}).get("error", {}).get("code") or str(resp.status_code)
        metrics.ERRORS.labels(code).inc()
        if g.get("key_id") and resp.status_code in (429, 503):
            metrics.KEY_REJECTED.labels(g.key_id, code).inc()
    if endpoint not in probes.PATHS:
        _log_line(endpoint, resp.status_code, elapsed)
    return resp


def _log_line(endpoint: str, status: int, elapsed: float) -> None:
    job = g.get("job")
    line = {
        "request_id": g.get("request_id"),
        "method": request.method,
        "endpoint": endpoint,
        "status": status,
        "seconds": round(elapsed, 3),
    }
    if job is not None:
        line.update(
            audio_seconds=round(job.duration, 2),
            queue_seconds=round(job.queue_wait, 3),
            inference_seconds=round(job.inference_seconds, 3),
            windows=len(job.windows),
        )
    log.info(json.dumps(line))


def _teardown(error: BaseException | None) -> None:
    if g.pop("in_flight", False):
        metrics.IN_FLIGHT.dec()
