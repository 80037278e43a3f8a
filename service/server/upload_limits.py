"""Request bodies are read under a deadline, a minimum rate and a bounded number of slots.

gunicorn's gthread worker reads a request body on one of its threads, blocking and without a timeout: a client
that trickles its upload holds that thread for as long as it likes, and a few dozen such clients hold them
all (docs/reliability.md, "Slow clients"). Two parts stop that:

- `GuardedSocket` (installed on every connection by service/server/worker.py): while a request's body is
  read, a read that gets no byte for UPLOAD_IDLE_TIMEOUT seconds, or that would leave the upload averaging
  under UPLOAD_MIN_RATE bytes per second once UPLOAD_RATE_GRACE seconds are over, raises `UploadTimeout`:
  408, on time whatever size gunicorn asks recv() for.
- `IntakeGuard`, WSGI middleware: the first read of a body takes one of UPLOAD_SLOTS; when none is free
  the request gets 503 `uploads_busy` with Retry-After before any of its body is read. The slot is given
  back as soon as the body has been read in full (or the response ends), so waiting for the model never
  holds one. A response sent before its body was read in full (408, 503, 401, 413) closes the connection
  instead of draining the rest, so the thread is free at once; the partial upload dies with the request
  (werkzeug's spooled part; the service's own temp file is only written once the body is complete).

gunicorn.conf.py gives each worker THREADS + UPLOAD_SLOTS threads: bodies being read take at most
UPLOAD_SLOTS of them, and the other THREADS serve probes and accepted work. The worker also keeps
connections whose request line and headers have not arrived in full off the threads altogether.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from werkzeug.wsgi import ClosingIterator

from .. import metrics
from ..errors import APIError, Unavailable

BUSY_RETRY_SECONDS = 5  # Retry-After when every upload slot is taken: stalled uploads are cut off within
# UPLOAD_RATE_GRACE plus UPLOAD_IDLE_TIMEOUT, most sooner


class UploadTimeout(APIError):
    status = 408
    type = "invalid_request_error"
    code = "upload_timeout"


@dataclass(frozen=True)
class UploadLimits:
    idle_timeout: float  # seconds without a byte (UPLOAD_IDLE_TIMEOUT)
    min_rate: float  # bytes per second, averaged from the request's start (UPLOAD_MIN_RATE) ...
    rate_grace: float  # ... once this many seconds are over (UPLOAD_RATE_GRACE)

    @classmethod
    def from_settings(cls, settings) -> UploadLimits:
        return cls(settings.upload_idle_timeout, settings.upload_min_rate, settings.upload_rate_grace)


CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"  # what gunicorn sends for Expect: 100-continue


class GuardedSocket:
    """A connection's socket whose blocking reads give up on a stalled client, while `limit_reads()` is on.

    service/server/worker.py wraps every accepted socket in one, so gunicorn's request parser reads the
    body through it; IntakeGuard turns the limits on for a request's body and off when its response ends.
    A read waits (poll) at most until the client has been idle UPLOAD_IDLE_TIMEOUT seconds, or until the
    moment its average rate falls under UPLOAD_MIN_RATE after the grace period, and then raises
    `UploadTimeout`; so the cut comes on time whatever size gunicorn asks recv() for. gunicorn's
    `100 Continue` waits for the first read of the body (`send`). Anything else (peeking with flags,
    fileno) goes to the socket untouched."""

    def __init__(self, sock: socket.socket, clock: Callable[[], float] = time.monotonic):
        self._sock, self._clock = sock, clock
        self._limits: UploadLimits | None = None
        self._started = 0.0
        self._received = 0
        self._continue_owed = False

    def __getattr__(self, name: str):
        return getattr(self._sock, name)

    def fileno(self) -> int:
        return self._sock.fileno()

    def limit_reads(self, limits: UploadLimits) -> None:
        self._limits, self._started, self._received = limits, self._clock(), 0

    def unlimit(self) -> None:
        self._limits = None

    def send(self, data: bytes, flags: int = 0) -> int:
        """gunicorn answers `Expect: 100-continue` before the application has run: that 100 is held back
        until the body is first read, after the API key was checked; a final answer first cancels it."""
        if data == CONTINUE_100 and not flags:
            self._continue_owed = True
            return len(data)
        self._continue_owed = False
        return self._sock.send(data, flags)

    def sendall(self, data: bytes, flags: int = 0) -> None:
        self._continue_owed = False
        self._sock.sendall(data, flags)

    def recv(self, size: int, flags: int = 0) -> bytes:
        if self._continue_owed and not flags:
            self._continue_owed = False
            self._sock.sendall(CONTINUE_100)
        if self._limits is None or flags:
            return self._sock.recv(size, flags)
        self._wait_for_data(self._limits)
        data = self._sock.recv(size)
        self._received += len(data)
        return data

    def _wait_for_data(self, limits: UploadLimits) -> None:
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        while True:
            elapsed = self._clock() - self._started
            wait = min(limits.idle_timeout, self._rate_deadline(limits) - elapsed)
            if wait <= 0:
                rate = self._received / max(elapsed, 1e-3)
                raise self._cut(
                    "slow",
                    f"The upload averaged {rate:.0f} bytes/s over {elapsed:.0f} s, under "
                    f"the {limits.min_rate:g} bytes/s this server requires "
                    "(UPLOAD_MIN_RATE).",
                )
            if poller.poll(wait * 1000):
                return
            if wait >= limits.idle_timeout:
                raise self._cut(
                    "idle", f"The upload sent nothing for {limits.idle_timeout:g} s (UPLOAD_IDLE_TIMEOUT)."
                )

    def _rate_deadline(self, limits: UploadLimits) -> float:
        """Seconds after the start at which the bytes received so far fall under the minimum rate."""
        if limits.min_rate <= 0:
            return float("inf")
        return max(limits.rate_grace, self._received / limits.min_rate)

    def _cut(self, reason: str, message: str) -> UploadTimeout:
        self._limits = None
        metrics.REJECTED.labels(f"upload_{reason}").inc()
        return UploadTimeout(message, param="file")


class GuardedInput:
    """`wsgi.input` that holds one of the upload slots from its first read until the body is read in full;
    with no slot free it raises 503 `uploads_busy` before reading anything."""

    def __init__(self, stream, slots: threading.Semaphore, length: int | None):
        self._stream, self._slots, self._length = stream, slots, length
        self.received = 0
        self.finished = length == 0  # the whole body has been read
        self._slot = False

    def read(self, size: int | None = -1) -> bytes:
        return self._guarded(self._stream.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._guarded(self._stream.readline, size)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _guarded(self, read: Callable[..., bytes], size) -> bytes:
        if self.finished:
            return b""
        self._take_slot()
        try:
            data = read(size)
        except BaseException:
            self.release()
            raise
        self.received += len(data)
        if not data or (self._length is not None and self.received >= self._length):
            self.finished = True
            self.release()
        return data

    def _take_slot(self) -> None:
        if self._slot:
            return
        if not self._slots.acquire(blocking=False):
            metrics.REJECTED.labels("uploads_busy").inc()
            raise Unavailable(
                "The server is receiving as many uploads as it can; retry shortly.",
                code="uploads_busy",
                retry_after=BUSY_RETRY_SECONDS,
            )
        self._slot = True
        metrics.UPLOADS_IN_PROGRESS.inc()

    def release(self) -> None:
        """Give the upload slot back (idempotent)."""
        if self._slot:
            self._slot = False
            self._slots.release()
            metrics.UPLOADS_IN_PROGRESS.dec()


class IntakeGuard:
    """WSGI middleware: every request with a body reads it through a `GuardedInput`."""

    def __init__(self, app, settings):
        self.app = app
        self.limits = UploadLimits.from_settings(settings)
        self.slots = threading.BoundedSemaphore(settings.upload_slots)

    def __call__(self, environ, start_response):
        length = _content_length(environ)
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not length and not chunked:
            return self.app(environ, start_response)
        body = GuardedInput(environ["wsgi.input"], self.slots, None if chunked else length)
        environ["wsgi.input"] = body
        sock = environ.get("gunicorn.socket")
        if not isinstance(sock, GuardedSocket):  # served by another worker class: only the slots apply
            sock = None
        if sock is not None:
            sock.limit_reads(self.limits)

        def done() -> None:
            body.release()
            if sock is not None:
                sock.unlimit()

        def start(status: str, headers, exc_info=None):
            if not body.finished:  # do not drain what the client may never send: close instead
                _close_after_response(start_response)
            return start_response(status, headers, exc_info)

        try:
            return ClosingIterator(self.app(environ, start), done)
        except BaseException:
            done()
            raise


def _content_length(environ) -> int:
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _close_after_response(start_response) -> None:
    """Ask gunicorn to close the connection after this response (it ignores a Connection header set by
    the app, as WSGI requires): its start_response is a method of the response, which has force_close()."""
    response = getattr(start_response, "__self__", None)
    if hasattr(response, "force_close"):
        response.force_close()
