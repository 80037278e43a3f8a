"""gunicorn's gthread worker, with a connection given a thread only once its request headers have arrived.

Stock gthread (gunicorn 27.0.1, pinned) hands each new connection to a thread that waits up to 5 s for the
first byte and then reads the request line and headers blocking, without a limit in time: a client that
sends its headers a byte at a time holds a thread for as long as it likes. Here the worker's own event loop
(the selector that already accepts connections and watches kept-alive ones) reads the head, non-blocking:

- a connection, new or kept alive, is watched until its head (up to the blank line) has arrived; it has
  HEADER_TIMEOUT seconds for that, else it is answered 408 and closed; a head over 64 KiB gets 431;
- the bytes read are put back into gunicorn's parser, and only then does a thread take the request;
- its socket is a `GuardedSocket` (upload_limits.py), so the body is read under the upload limits;
- closing a connection gracefully (half-close, then drain what the client still sends, at most 2 s) runs
  on the event loop too; stock gthread drains on its main thread, blocking, so cutting off a hundred
  stalled uploads that keep trickling would stall the loop, and every other connection, for minutes.

On SIGTERM the scheduler refuses new work (503 + Retry-After) while accepted work finishes, and the worker
closes its listeners so that new connections are refused at once instead of queueing unanswered.

TLS connections (gunicorn's own certfile) are handed over as before: their bytes are not the request.
"""

from __future__ import annotations

import selectors
import socket
import time
from functools import partial

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; the service's own are a few hundred bytes
LINGER_SECONDS = 2.0  # a graceful close drains the client's last bytes this long at most (gunicorn's too)
LINGER_MAX_BYTES = 64 * 1024
READ_SIZE = 64 * 1024
HEAD_ENDS = (b"\r\n\r\n", b"\n\n")


class GuardedThreadWorker(ThreadWorker):
    """gthread, guarded against slow clients (heads on the event loop, bodies under upload limits, lingering
    closes off the main thread), and draining on SIGTERM."""

    def init_process(self):
        from service.server import raw_errors
        from service.server.upload_limits import (
            GuardedSocket,  # after the fork: the master never loads the app
        )
        from service.settings import from_env

        raw_errors.install()  # gunicorn's own 400/414/431/501 in OpenAI's error shape
        self.timeout_408, self.too_large_431 = raw_errors.TIMEOUT_408, raw_errors.TOO_LARGE_431

        self.guarded_socket = GuardedSocket
        self.header_timeout = from_env().header_timeout
        self.heads: dict[object, float] = {}  # connection -> deadline for its head
        self.lingering: dict[object, list] = {}  # half-closed socket -> [close it by then, bytes drained]
        super().init_process()

    # -- heads on the event loop ---------------------------------------------------------------------------
    def enqueue_req(self, conn):
        """Called on the event loop for a new connection, a kept-alive one that turned readable, or one
        whose parser holds pipelined bytes (those go straight to a thread: nothing to wait for)."""
        if self.cfg.is_ssl or (conn.parser is not None and conn.parser.unreader.buf.getvalue()):
            return super().enqueue_req(conn)
        if not isinstance(conn.sock, self.guarded_socket):
            conn.sock = self.guarded_socket(conn.sock)
            conn.close = partial(self._close, conn)
        conn.head = b""
        conn.sock.setblocking(False)
        self.heads[conn] = time.monotonic() + self.header_timeout
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_bytes, conn))

    def _on_head_bytes(self, conn, _sock) -> None:
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop_head(conn)
            return
        conn.head += data
        if any(end in conn.head for end in HEAD_ENDS):
            self._unwatch_head(conn)
            conn.init()  # the parser, reading from the socket (blocking again) behind what we read
            conn.parser.unreader.unread(conn.head)
            conn.head = b""
            super().enqueue_req(conn)
        elif len(conn.head) > MAX_HEAD_BYTES:
            self._drop_head(conn, self.too_large_431)

    def _unwatch_head(self, conn) -> None:
        del self.heads[conn]
        self.poller.unregister(conn.sock)

    def _drop_head(self, conn, answer: bytes = b"") -> None:
        self._unwatch_head(conn)
        self.nr_conns -= 1
        if answer:
            try:
                conn.sock.send(answer)  # a few bytes into an empty send buffer: never blocks
            except OSError:
                pass
        conn.close(graceful=bool(answer))

    def murder_pending(self):
        """Runs on every turn of the event loop: also close heads and lingering closes past their time."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c, deadline in self.heads.items() if deadline <= now]:
            self._drop_head(conn, self.timeout_408 if conn.head else b"")
        for sock in [s for s, (deadline, _) in self.lingering.items() if deadline <= now]:
            self._end_linger(sock)

    def _cap_keepalive(self, deadline):
        """On shutdown: connections that have sent nothing yet are closed with the kept-alive ones."""
        super()._cap_keepalive(deadline)
        for conn, head_deadline in self.heads.items():
            if not conn.head:
                self.heads[conn] = min(head_deadline, deadline)

    # -- shutdown --------------------------------------------------------------------------------------------
    def handle_exit(self, sig, frame):
        """SIGTERM: new work gets 503 + Retry-After while accepted work finishes; stop listening."""
        extensions = getattr(getattr(self, "wsgi", None), "extensions", {})
        if extensions.get("scheduler") is not None:
            extensions["scheduler"].begin_shutdown()
        if extensions.get("jobs_runner") is not None:  # running jobs go back to the store's queue
            extensions["jobs_runner"].stop()
        super().handle_exit(sig, frame)
        self.method_queue.defer(self._close_listeners)

    def _close_listeners(self) -> None:
        # gunicorn stops accepting but keeps its listener open until the drain ends, so the kernel queues
        # new connections that nobody answers and resets them only then. Closing this worker's copy (the
        # master closed its own first) makes the kernel refuse them at once; on a reload (HUP) the master
        # keeps its copy and the new workers go on accepting.
        self.set_accept_enabled(False)
        for listener in self.sockets:
            listener.close()

    def accept(self, listener):
        try:
            super().accept(listener)
        except (OSError, AttributeError):  # a readiness event that raced _close_listeners
            if self.alive:
                raise

    # -- graceful close on the event loop ------------------------------------------------------------------
    def _close(self, conn, graceful: bool = False) -> None:
        sock = conn.sock
        if not graceful:
            util.close(sock)
            return
        try:
            sock.shutdown(socket.SHUT_WR)  # the response is complete: FIN after it
            sock.setblocking(False)
            self.poller.register(sock, selectors.EVENT_READ, self._on_linger_bytes)
        except (OSError, ValueError, KeyError):
            util.close(sock)
            return
        self.lingering[sock] = [time.monotonic() + LINGER_SECONDS, 0]

    def _on_linger_bytes(self, sock) -> None:
        try:
            data = sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        state = self.lingering[sock]
        state[1] += len(data)
        if not data or state[1] >= LINGER_MAX_BYTES:
            self._end_linger(sock)

    def _end_linger(self, sock) -> None:
        del self.lingering[sock]
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError):
            pass
        util.close(sock)
