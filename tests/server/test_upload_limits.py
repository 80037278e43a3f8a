"""The upload guard on a real socket pair: idle and minimum-rate cut-offs on time, slots, settings."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from service.errors import Unavailable
from service.server.upload_limits import GuardedInput, GuardedSocket, UploadLimits, UploadTimeout
from service.settings import SettingsError, from_env


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    yield GuardedSocket(server), client
    server.close()
    client.close()


def test_without_limits_reads_pass_through(pair):
    sock, client = pair
    client.sendall(b"hello")
    assert sock.recv(5) == b"hello"


def test_an_idle_upload_is_cut_off_after_the_idle_timeout(pair):
    sock, client = pair
    sock.limit_reads(UploadLimits(idle_timeout=0.3, min_rate=0, rate_grace=0))
    client.sendall(b"x")
    assert sock.recv(10) == b"x"
    began = time.monotonic()
    with pytest.raises(UploadTimeout) as caught:
        sock.recv(10)
    assert (
        time.monotonic() - began >= 0.25
    )  # not before the idle timeout (when after it: the machine's speed)
    assert caught.value.status == 408 and "UPLOAD_IDLE_TIMEOUT" in caught.value.message


def test_a_trickle_is_cut_off_when_the_grace_period_ends(pair):
    sock, client = pair
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.05):
            client.send(b"0123456789")  # 200 bytes/s

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    sock.limit_reads(UploadLimits(idle_timeout=5, min_rate=1000, rate_grace=0.6))
    began = time.monotonic()
    try:
        with pytest.raises(UploadTimeout) as caught:
            for _ in range(1000):  # bounded: the cut comes after ~12 reads
                sock.recv(65536)
    finally:
        stop.set()
        sender.join(2)
    assert time.monotonic() - began >= 0.55  # not before the grace period ends
    assert "UPLOAD_MIN_RATE" in caught.value.message  # the rate cut it, not the idle timeout (5 s)


def test_a_fast_upload_is_never_cut_off(pair):
    sock, client = pair
    sock.limit_reads(UploadLimits(idle_timeout=1, min_rate=1000, rate_grace=0.1))
    for _ in range(20):
        client.sendall(bytes(4096))
        assert len(sock.recv(65536)) > 0
        time.sleep(0.01)
    sock.unlimit()


class Stream:
    def __init__(self, data: bytes):
        self.data = data

    def read(self, size=-1):
        size = len(self.data) if size is None or size < 0 else size
        out, self.data = self.data[:size], self.data[size:]
        return out


def test_a_body_holds_a_slot_from_its_first_read_until_it_is_read_in_full():
    slots = threading.BoundedSemaphore(1)
    first = GuardedInput(Stream(b"abcdef"), slots, 6)
    second = GuardedInput(Stream(b"xyz"), slots, 3)
    assert first.read(3) == b"abc"
    with pytest.raises(Unavailable) as caught:
        second.read(3)
    assert caught.value.code == "uploads_busy" and caught.value.retry_after
    assert first.read(3) == b"def" and first.finished  # read in full: the slot is free again
    assert second.read(3) == b"xyz"
    second.release()
    first.release()  # idempotent
    assert slots.acquire(blocking=False)


@pytest.mark.parametrize(
    "name,raw",
    [
        ("UPLOAD_IDLE_TIMEOUT", "0"),
        ("UPLOAD_MIN_RATE", "-1"),
        ("UPLOAD_SLOTS", "0"),
        ("HEADER_TIMEOUT", "x"),
        ("KEY_MAX_SHARE", "0"),
        ("KEY_MAX_SHARE", "1.5"),
    ],
)
def test_bad_limits_name_the_variable(name, raw):
    with pytest.raises(SettingsError, match=name):
        from_env({name: raw})


def test_limits_parse():
    s = from_env(
        {
            "UPLOAD_IDLE_TIMEOUT": "5",
            "UPLOAD_MIN_RATE": "2048",
            "UPLOAD_RATE_GRACE": "3",
            "UPLOAD_SLOTS": "64",
            "HEADER_TIMEOUT": "7",
            "KEY_MAX_SHARE": "0.25",
        }
    )
    assert UploadLimits.from_settings(s) == UploadLimits(5, 2048, 3)
    assert (s.upload_slots, s.header_timeout, s.key_max_share) == (64, 7, 0.25)
