"""Answers the HTTP server writes itself, before any request reaches the application, in OpenAI's error
shape: gunicorn's refusals (400 malformed request, 414 long URL, 431 large headers, 501 unknown transfer
coding, ...) and the worker's 408 and 431 for slow or oversized request heads."""

from __future__ import annotations

import json

from gunicorn import util

MESSAGE_MAX = 200  # characters of gunicorn's message (it may quote the request line)
CODES = {
    400: "invalid_request",
    403: "forbidden",
    408: "request_timeout",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    501: "not_implemented",
}


def error_response(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 response carrying the error JSON; the connection closes after it."""
    kind = "invalid_request_error" if status < 500 or status == 501 else "server_error"
    body = json.dumps(
        {
            "error": {
                "message": (message or reason)[:MESSAGE_MAX],
                "type": kind,
                "param": None,
                "code": CODES.get(status, "internal_error" if status >= 500 else "invalid_request"),
            }
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's util.write_error, in JSON instead of an HTML page."""
    util.write_nonblock(sock, error_response(status_int, reason, mesg))


def install() -> None:
    """Make gunicorn's worker write its refusals through `write_error` (called once per worker process:
    gunicorn.workers.base calls util.write_error by name)."""
    util.write_error = write_error


TIMEOUT_408 = error_response(
    408, "Request Timeout", "The request headers did not arrive within HEADER_TIMEOUT seconds."
)
TOO_LARGE_431 = error_response(
    431, "Request Header Fields Too Large", "The request line and headers are over 64 KiB."
)
