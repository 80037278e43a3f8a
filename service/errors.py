"""Typed errors, each with one HTTP status, rendered in OpenAI's error shape.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "file", "code": "invalid_audio"}}

Every layer raises these; `register(app)` maps them (and anything unexpected) to JSON responses in one place,
so no traceback or server path ever reaches a client.
"""

from __future__ import annotations

import errno
import logging

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class APIError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.code
        self.retry_after = retry_after

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"


class InvalidAudio(InvalidRequest):
    code = "invalid_audio"


class AudioTooLong(InvalidRequest):
    code = "audio_too_long"


class Unauthorized(APIError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class NotFound(APIError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(APIError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class Conflict(APIError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class PayloadTooLarge(APIError):
    status = 413
    type = "invalid_request_error"
    code = "file_too_large"


class QueueFull(APIError):
    status = 429
    type = "rate_limit_error"
    code = "queue_full"


class ClientClosed(APIError):
    status = 499  # nginx's "client closed request": nobody is listening any more
    type = "cancelled"
    code = "client_disconnected"


class InternalError(APIError):
    status = 500
    type = "server_error"
    code = "internal_error"


class Unavailable(APIError):
    status = 503
    type = "server_error"
    code = "unavailable"


class DeadlineExceeded(APIError):
    status = 504
    type = "server_error"
    code = "timeout"


class InsufficientStorage(APIError):
    status = 507
    type = "server_error"
    code = "insufficient_storage"


def response(error: APIError):
    resp = jsonify(error.body())
    resp.status_code = error.status
    if error.retry_after is not None:
        resp.headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return resp


FORM_PARTS_MAX = 1000  # werkzeug's default multipart parts limit (MAX_FORM_PARTS)
FORM_FIELD_MAX_BYTES = 1024 * 1024  # a text field's limit (MAX_FORM_MEMORY_SIZE in create_app)


def from_http_exception(exc: HTTPException) -> APIError:
    if exc.code == 413:
        return too_large()
    if exc.code == 404:
        return NotFound("No such endpoint. See /openapi.json for what this server offers.")
    if exc.code == 405:
        return MethodNotAllowed("This endpoint does not accept that HTTP method.")
    if exc.code is not None and exc.code < 500:
        error = InvalidRequest(exc.description or "Bad request.")
        error.status = exc.code
        return error
    return InternalError("The server failed to handle the request.")


def too_large() -> PayloadTooLarge:
    """413: the body over MAX_UPLOAD_MB (refused before it is read), or, within it, a form that werkzeug's
    parser refused: a text field over 1 MiB or more than 1000 parts, which is no fault of `file`."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    length = request.content_length
    if limit is None or length is None or length > limit:
        return PayloadTooLarge("The upload is larger than the server accepts (MAX_UPLOAD_MB).", param="file")
    return PayloadTooLarge(
        f"A text field of the form is over {FORM_FIELD_MAX_BYTES // 1024} KiB, or the form has more than "
        f"{FORM_PARTS_MAX} parts: send the audio in the file part and each option once.",
        code="form_too_large",
    )


def register(app: Flask) -> None:
    """Route every error to the OpenAI error shape."""

    @app.errorhandler(APIError)
    def handle_api_error(error: APIError):
        return response(error)

    @app.errorhandler(HTTPException)
    def handle_http_exception(exc: HTTPException):
        return response(from_http_exception(exc))

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # werkzeug spools large multipart forms to TMPDIR before any view runs: a full disk lands here
            log.warning("no room to store an upload: %s", exc)
            return response(InsufficientStorage("The server has no room to store the upload; retry later."))
        log.exception("unhandled error")
        return response(InternalError("The server failed to handle the request."))
