"""Slow and greedy clients against the real server and through the real nginx (docs/reliability.md).

Hundreds of stalled connections are driven by one thread (bench.trickle.Trickle); while they stall,
/readyz answers within 2 s, a normal transcription succeeds, every stalled connection is closed within its
timeout, and no upload temp file is left. Then one key floods the queue while another key is served.
Every loop is bounded in count and time.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from reliability_helpers import API_KEY, OTHER_KEY, auth

from bench.loadtest import FORM  # no temperature fallback: every request costs the same
from bench.slowloris import held_tmp_files
from bench.trickle import Trickle
from deploy import nginx
from deploy.config import Slot
from service.server.auth import key_id
from tests.helpers import free_port, wait_for

ENDPOINT = "/v1/audio/transcriptions"
PROBE_LIMIT = 2.0  # seconds a /readyz may take while the attack lasts
SLACK = 3.0  # seconds beyond a timeout for the cut to be seen here (two shared cores)
LIMITS = {
    "HEADER_TIMEOUT": "3",
    "UPLOAD_IDLE_TIMEOUT": "3",
    "UPLOAD_RATE_GRACE": "4",
    "UPLOAD_MIN_RATE": "1024",
}


def probe_while(
    url: str, until, seconds: float, at_least: float = 5.0, interval: float = 0.25
) -> list[float]:
    """GET /readyz every `interval` s for `at_least` s and then until until() or `seconds` pass; returns each
    probe's latency (each must be 200)."""
    latencies = []
    began = time.monotonic()
    while time.monotonic() - began < seconds and (time.monotonic() - began < at_least or not until()):
        sent = time.monotonic()
        resp = requests.get(url + "/readyz", timeout=10)
        latencies.append(time.monotonic() - sent)
        assert resp.status_code == 200, resp.text
        time.sleep(interval)
    return latencies


def transcribe(url: str, audio: Path, key: str | None = None) -> requests.Response:
    with open(audio, "rb") as f:
        return requests.post(
            url + ENDPOINT, files={"file": f}, data=FORM, headers=auth(key) if key else {}, timeout=60
        )


def attack(url: str, **kwargs) -> dict[str, Trickle]:
    """200 body trickles (20 B/s), 20 stalls after 1 MiB (werkzeug spools those to TMPDIR), 20 heads sent a
    few bytes at a time, 20 connections that send nothing."""
    kinds = {
        "trickle": Trickle(url, 200, **kwargs),
        "stall": Trickle(url, 20, chunk=0, burst=1 << 20, body_mib=2, **kwargs),
        "slow-head": Trickle(url, 20, phase="headers", head_pad=2000, **kwargs),
        "silent": Trickle(url, 20, phase="silent", **kwargs),
    }
    for trickle in kinds.values():
        trickle.open()
    return kinds


def all_closed(kinds: dict[str, Trickle]) -> bool:
    return all(len(t.closed()) == len(t.attackers) for t in kinds.values())


def test_hundreds_of_stalled_uploads_cannot_starve_the_service(start_service, audio_dir, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    service = start_service(TMPDIR=str(uploads), WHISPER_FORCE_TOKENS="4", **LIMITS)
    kinds = attack(service.url)
    try:
        assert all(len(t.attackers) == t.count for t in kinds.values())  # every attacker got connected
        # the stalls send their megabyte, which werkzeug holds in TMPDIR (waited for, not slept on)
        wait_for(lambda: held_tmp_files(str(uploads), service.process.pid) >= 1, timeout=60)
        normal = transcribe(service.url, audio_dir / "speech.wav")
        assert normal.status_code == 200, normal.text
        latencies = probe_while(service.url, lambda: all_closed(kinds), seconds=20)
        assert max(latencies) < PROBE_LIMIT, latencies
        assert all_closed(kinds), {k: len(t.attackers) - len(t.closed()) for k, t in kinds.items()}
    finally:
        for trickle in kinds.values():
            trickle.close()
    limits = {k: float(v) for k, v in LIMITS.items()}
    deadlines = {
        "trickle": limits["UPLOAD_RATE_GRACE"],
        "stall": limits["UPLOAD_IDLE_TIMEOUT"] + 1.5,  # after the burst (sent within 1.5 s of opening)
        "slow-head": limits["HEADER_TIMEOUT"],
        "silent": limits["HEADER_TIMEOUT"],
    }
    for kind, trickle in kinds.items():
        latest = max(a.closed_at for a in trickle.attackers)
        assert latest < deadlines[kind] + SLACK, (kind, latest)
    answers = {a.status for a in kinds["trickle"].attackers + kinds["stall"].attackers}
    assert answers == {"HTTP/1.1 408 REQUEST TIMEOUT"}, answers
    assert {a.status for a in kinds["slow-head"].attackers} == {"HTTP/1.1 408 Request Timeout"}
    assert held_tmp_files(str(uploads), service.process.pid) == 0  # nothing on disk, nothing held open
    # every body cut off is counted once: a trickle as slow, or as idle when a busy machine delayed its
    # sender past UPLOAD_IDLE_TIMEOUT (seen: 103 of 200 under load); the 20 stalls always as idle
    slow = service.metric("whisper_rejected_requests_total", reason="upload_slow")
    idle = service.metric("whisper_rejected_requests_total", reason="upload_idle")
    assert slow + idle == 220 and idle >= 20, (slow, idle)
    assert service.metric("whisper_uploads_in_progress") == 0


# -- the same through nginx ----------------------------------------------------------------------------------
@pytest.fixture
def proxy(tmp_path):
    """Real nginx with deploy/nginx.py's config (short timeouts, as a test needs), in front of `upstream`."""
    started = []

    def start(app_port: int, **limits) -> str:
        home = tmp_path / "nginx"
        (home / "conf.d").mkdir(parents=True)
        port = free_port()
        (home / "conf.d" / nginx.CONF_NAME).write_text(
            nginx.render(Slot("blue", app_port, 0), port, **limits)
        )
        user = "user root;\n" if os.geteuid() == 0 else ""
        (home / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {home}/nginx.pid;\nerror_log {home}/error.log;\n"
            "events { worker_connections 2048; }\n"
            f"http {{\n  client_body_temp_path {home}/client;\n  proxy_temp_path {home}/proxy;\n"
            f"  include {home}/conf.d/*.conf;\n}}\n"
        )
        process = subprocess.Popen(["nginx", "-c", str(home / "nginx.conf"), "-g", "daemon off;"])
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    return url
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError((home / "error.log").read_text())

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def test_through_nginx_stalled_uploads_never_reach_the_service(start_service, proxy, audio_dir, tmp_path):
    service = start_service(WHISPER_FORCE_TOKENS="4")  # the service's own defaults: nginx is the guard
    url = proxy(int(service.url.rsplit(":", 1)[1]), header_timeout=3, body_timeout=3, per_client=32)
    sources = [f"127.0.0.{10 + i}" for i in range(10)]  # 20 attackers per address, under limit_conn
    kinds = attack(url, sources=sources)
    crowd = Trickle(url, 40, sources=["127.0.0.9"])  # one address over its 32 connections
    crowd.open()
    try:
        time.sleep(1.5)
        normal = transcribe(url, audio_dir / "speech.wav")
        assert normal.status_code == 200, normal.text
        stalled = {k: kinds[k] for k in ("stall", "slow-head", "silent")}
        latencies = probe_while(url, lambda: all_closed(stalled), seconds=15)
        assert max(latencies) < PROBE_LIMIT, latencies
        assert all_closed(stalled)  # client_body_timeout / client_header_timeout
        for kind, trickle in stalled.items():
            assert max(a.closed_at for a in trickle.attackers) < 3 + 1.5 + SLACK, kind
        assert not kinds["trickle"].closed()  # nginx holds the trickles (cheap) ...
        assert service.metric("whisper_uploads_in_progress") == 0  # ... and the service never sees them
        refused = [a for a in crowd.attackers if a.status.startswith("HTTP/1.1 429")]
        assert 8 <= len(refused) <= 40 - 32 + 1, [a.status for a in crowd.attackers]
    finally:
        for trickle in [*kinds.values(), crowd]:
            trickle.close()
    spooled = tmp_path / "nginx" / "client"
    wait_until(lambda: not any(spooled.rglob("*")), seconds=10)  # nginx's own body files are gone too


def wait_until(condition, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met")


# -- one key floods -----------------------------------------------------------------------------------------
def flood_while_another_key_sends(send) -> tuple[list[requests.Response], list[requests.Response]]:
    """Eight threads send API_KEY's long clip back to back (at most 120 requests in all); once one is refused,
    three rounds of four OTHER_KEY requests at once. Returns (the flood's answers, the other key's)."""
    flood: list[requests.Response] = []
    stop = threading.Event()
    budget = iter(range(120))  # at most 120 flooding requests in all

    def flooder():
        while not stop.is_set() and next(budget, None) is not None:
            flood.append(send(API_KEY, "long.wav"))

    threads = [threading.Thread(target=flooder, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: any(r.status_code == 429 for r in flood), seconds=60
        )  # the flooder is over its share
        others: list[requests.Response] = []
        for _ in range(3):  # three rounds of four at once: the other half of the queue
            batch = [threading.Thread(target=lambda: others.append(send(OTHER_KEY))) for _ in range(4)]
            for thread in batch:
                thread.start()
            for thread in batch:
                thread.join(90)
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    return flood, others


def test_a_flooding_key_cannot_deny_another_key_service(start_service, audio_dir):
    keys = f"{API_KEY},{OTHER_KEY}"
    service = start_service(
        API_KEYS=keys, QUEUE_MAX_REQUESTS="8", KEY_MAX_SHARE="0.5", WHISPER_FORCE_TOKENS="16"
    )

    def send(key: str, name: str = "speech.wav") -> requests.Response:
        return transcribe(service.url, audio_dir / name, key)

    flood, others = flood_while_another_key_sends(send)
    assert [r.status_code for r in others] == [200] * 12, [r.text[:200] for r in others]
    refused = [r for r in flood if r.status_code == 429]
    assert refused and all(r.json()["error"]["code"] == "key_share" for r in refused)
    assert all(r.headers["Retry-After"].isdigit() for r in refused)
    assert {r.status_code for r in flood} <= {200, 429}
    flooder_id, other_id = key_id(API_KEY), key_id(OTHER_KEY)
    text = service.metrics()
    assert API_KEY not in text and OTHER_KEY not in text  # labelled by id, never by the key
    assert service.metric("whisper_key_accepted_requests_total", key_id=other_id) == 12
    assert service.metric(
        "whisper_key_rejected_requests_total", key_id=flooder_id, reason="key_share"
    ) == len(refused)
    assert service.metric("whisper_key_rejected_requests_total", key_id=other_id) == 0
    assert service.metric("whisper_key_requests_in_flight", key_id=flooder_id) == 0
