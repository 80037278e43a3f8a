"""Slow clients driven by one thread (bench/slowloris.py, tests/reliability/test_reliability_slow_clients.py):
each opens a connection and trickles a multipart upload's body (or its request headers) a few bytes at a
time, or sends nothing; a selector watches them all and records when and how the server closes each."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

from bench.loadtest import ENDPOINT

BOUNDARY = "slowloris"
MAX_CONNECTIONS = 1000


@dataclass
class Attacker:
    sock: socket.socket
    opened: float
    pending: bytes = b""  # bytes still to send, --chunk at a time
    closed_at: float | None = None  # when the server closed (seconds after open)
    status: str = ""  # the status line the server sent before closing, if any


class Trickle:
    """N slow uploads (or slow headers) driven by one thread; records when the server closes each."""

    def __init__(
        self,
        url: str,
        connections: int,
        *,
        interval: float = 0.5,
        chunk: int = 10,
        phase: str = "body",
        body_mib: float = 1.0,
        headers: dict | None = None,
        sources: list[str] | None = None,
        burst: int = 0,
        head_pad: int = 0,
    ):
        parsed = urlparse(url)
        if not (parsed.hostname == "localhost" or (parsed.hostname or "").startswith("127.")):
            raise SystemExit(f"loopback only: {url}")
        self.address = (parsed.hostname, parsed.port or 80)
        self.count = min(connections, MAX_CONNECTIONS)
        self.interval, self.chunk, self.phase = interval, chunk, phase
        self.body_bytes = int(body_mib * 2**20)
        headers = {**(headers or {}), **({"X-Padding": "a" * head_pad} if head_pad else {})}
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.sources = sources or []
        self.burst = burst  # body bytes sent at once before the trickle (chunk=0: then nothing: a stall)
        self.attackers: list[Attacker] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)

    def request_head(self) -> tuple[bytes, bytes]:
        part = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            f"Content-Type: audio/wav\r\n\r\n"
        ).encode()
        head = (
            f"POST {ENDPOINT} HTTP/1.1\r\nHost: {self.address[0]}\r\n{self.extra}"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(part) + self.body_bytes}\r\n\r\n"
        ).encode()
        return head, part

    def open(self) -> None:
        head, part = self.request_head()
        for i in range(self.count):
            sock = socket.socket()
            if self.sources:
                sock.bind((self.sources[i % len(self.sources)], 0))
            try:
                sock.connect(self.address)
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            attacker = Attacker(sock, time.monotonic())
            if self.phase == "body":
                sock.setblocking(True)
                with contextlib.suppress(OSError):
                    sock.sendall(head + part + bytes(self.burst))
                sock.setblocking(False)
                attacker.pending = bytes(self.body_bytes - self.burst) if self.chunk else b""
            elif self.phase == "silent":
                pass
            else:
                attacker.pending = head
            self.attackers.append(attacker)
        self._thread.start()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        for attacker in self.attackers:
            selector.register(attacker.sock, selectors.EVENT_READ, attacker)
        next_send = time.monotonic()
        while not self._stop.is_set():
            for key, _ in selector.select(timeout=max(0.0, next_send - time.monotonic())):
                self._on_readable(key.data, selector)
            if time.monotonic() >= next_send:
                next_send += self.interval
                for attacker in self.attackers:
                    if attacker.closed_at is None and attacker.pending:
                        piece = attacker.pending[: self.chunk]
                        attacker.pending = attacker.pending[self.chunk :]
                        try:
                            attacker.sock.send(piece)
                        except OSError:
                            self._closed(attacker, selector)
        selector.close()

    def _on_readable(self, attacker: Attacker, selector) -> None:
        try:
            data = attacker.sock.recv(4096)
        except OSError:
            data = b""
        if data and not attacker.status:
            attacker.status = data.split(b"\r\n", 1)[0].decode(errors="replace")
        if not data:
            self._closed(attacker, selector)

    def _closed(self, attacker: Attacker, selector) -> None:
        if attacker.closed_at is None:
            attacker.closed_at = time.monotonic() - attacker.opened
            selector.unregister(attacker.sock)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for attacker in self.attackers:
            attacker.sock.close()

    def closed(self) -> list[Attacker]:
        return [a for a in self.attackers if a.closed_at is not None]
