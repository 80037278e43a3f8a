"""OpenAI's Realtime transcription protocol: `GET /v1/realtime?intent=transcription`, upgraded to a WebSocket.

Any client written for OpenAI's realtime transcription (the `openai` SDK's `client.realtime.connect()`, a
browser's `new WebSocket(url, ["realtime", "openai-insecure-api-key.<key>"])`) works unchanged. Each session
holds one gunicorn request thread for its life, so REALTIME_MAX_SESSIONS (below THREADS) bounds them.

config.py     session.update in OpenAI's GA and beta shapes
events.py     client events (typed) and server events
audio.py      pcm16 at 24 kHz, G.711 -> 16 kHz float32
turns.py      the input audio buffer and server_vad turn detection (Silero)
agreement.py  LocalAgreement: only text two decodes agree on is sent while someone speaks
decoding.py   a turn's decodes, through the scheduler, first in line
session.py    one session: client events and the passage of time -> server events
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

from flask import Blueprint, Flask, current_app, g, request
from flask_sock import Sock

from ... import metrics
from ...errors import InvalidRequest
from .decoding import Decoder
from .events import EventError, error_event
from .session import Session

log = logging.getLogger("service.realtime")

bp = Blueprint("realtime", __name__, url_prefix="/v1")
sock = Sock()
POLL_SECONDS = 0.05  # how often a session looks at its decodes and turns between client frames
PING_SECONDS = 20  # keep-alive pings: proxies close connections that stay silent (nginx: 60 s)
READER_EXIT_SECONDS = 5  # simple-websocket's reader thread ends within this once its socket is shut down
CLOSE_NORMAL, CLOSE_TRY_AGAIN = 1000, 1013  # RFC 6455 7.4.1 and IANA's registry
# frames read but not yet handled, in bytes: a client minutes ahead of real time is closed (about 8 min of
# base64 pcm16 at 24 kHz; it bounds what simple-websocket's reader thread queues, which has no bound itself)
MAX_BACKLOG_BYTES = 32 * 1024 * 1024


def register(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    app.config["SOCK_SERVER_OPTIONS"] = {
        "subprotocols": ["realtime"],  # what OpenAI's browser clients offer beside the key
        "max_message_size": settings.realtime_max_frame_kb * 1024,  # bigger: closed with 1009
        "ping_interval": PING_SECONDS,
    }
    app.extensions["realtime"] = Seats(settings.realtime_max_sessions)
    app.register_blueprint(bp)


class Seats:
    """The bound on live sessions in this worker."""

    def __init__(self, limit: int):
        self.limit, self.taken, self.lock = limit, 0, threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.taken >= self.limit:
                return False
            self.taken += 1
            metrics.REALTIME_SESSIONS.inc()
            return True

    def give_back(self) -> None:
        with self.lock:
            self.taken -= 1
            metrics.REALTIME_SESSIONS.dec()


@bp.before_request
def transcription_only() -> None:
    if request.args.get("intent") != "transcription":
        raise InvalidRequest(
            "This server speaks Realtime transcription sessions only: connect to "
            "/v1/realtime?intent=transcription.",
            param="intent",
        )


@sock.route("/realtime", bp=bp)
def realtime(ws) -> None:
    try:
        _serve(ws)
    finally:
        _release(ws)


def _release(ws) -> None:
    """Close the WebSocket and wait for simple-websocket's reader thread, which closes the socket itself.

    Left alone, that thread may close the socket after gunicorn's worker has put it on its event loop for a
    graceful close; the descriptor's number, reused by the next connection, is then still registered and
    the worker dies (KeyError: 'FD 22 is already registered'). Shutting the socket down wakes the thread
    at once, even while it waits for its next ping."""
    try:
        if ws.connected:
            ws.close()
        ws.sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # the client or the reader thread closed it already
        pass
    ws.thread.join(READER_EXIT_SECONDS)


def _serve(ws) -> None:
    seats = current_app.extensions["realtime"]
    scheduler = current_app.extensions["scheduler"]
    refusal = _refusal(seats, scheduler)
    if refusal:
        metrics.REJECTED.labels("realtime_" + refusal[0]).inc()
        ws.send(json.dumps(error_event(EventError(refusal[1], refusal[0]))))
        ws.close(CLOSE_TRY_AGAIN, refusal[1])
        return
    session = Session(Decoder(scheduler, current_app.config["SETTINGS"], g.get("key_id")))
    reason = "client closed"
    try:
        reason = Connection(ws, session, current_app.config["SETTINGS"]).run()
    finally:
        session.close()
        seats.give_back()
        log.info(json.dumps({"session": session.id, "request_id": g.get("request_id"), "closed": reason}))


def _refusal(seats: Seats, scheduler) -> tuple[str, str] | None:
    if not scheduler.ready:
        return "not_ready", f"The server is not ready: {scheduler.reason}."
    if not seats.take():
        return "sessions_full", f"This server holds {seats.limit} live sessions at once; retry shortly."
    return None


class Connection:
    """One session's loop on its request thread: frames in, events out, limits kept."""

    def __init__(self, ws, session: Session, settings):
        self.ws, self.session, self.settings = ws, session, settings
        self.opened = self.heard = time.monotonic()

    def run(self) -> str:
        """Serve until the client goes or a limit is reached; return why the session ended."""
        self._send([self.session.created()])
        while True:
            limit = self._limit_reached(time.monotonic())
            if limit:
                self._send([error_event(EventError(limit, "session_limit"))])
                self.ws.close(CLOSE_NORMAL, limit)
                return limit
            frame = self.ws.receive(timeout=POLL_SECONDS)  # ConnectionClosed when the client has gone
            out = []
            if frame is not None:
                self.heard = time.monotonic()
                out = self.session.handle(frame)
            self._send(out + self.session.tick())

    def _limit_reached(self, now: float) -> str | None:
        s = self.settings
        if now - self.heard > s.realtime_idle_timeout:
            return f"The session sent nothing for {s.realtime_idle_timeout:g} s (REALTIME_IDLE_TIMEOUT)."
        if now - self.opened > s.realtime_max_session_seconds:
            return f"The session reached {s.realtime_max_session_seconds:g} s (REALTIME_MAX_SESSION_SECONDS)."
        if sum(map(len, self.ws.input_buffer)) > MAX_BACKLOG_BYTES:
            return f"The client sent {MAX_BACKLOG_BYTES >> 20} MiB more than the session has taken in."
        return None

    def _send(self, events: list[dict]) -> None:
        for event in events:
            self.ws.send(json.dumps(event))
