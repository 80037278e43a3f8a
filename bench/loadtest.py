"""`make loadtest`: overload a real server on loopback and check that it degrades cleanly.

    python -m bench.loadtest                      # full run: capacity, then 2x capacity for 60 s
    python -m bench.loadtest --duration 20        # shorter overload phase
    python -m bench.loadtest --json out.json      # also write the figures as JSON

1. Starts `gunicorn -c gunicorn.conf.py` on 127.0.0.1 (the random-weight test checkpoint unless
   --model, WHISPER_FORCE_TOKENS so that every request costs the same decoder steps).
2. Capacity: --clients closed-loop clients send a short clip back to back for --capacity-seconds;
   capacity = successful requests per second.
3. Overload: requests arrive at --factor x capacity (open loop, evenly spaced) for --duration seconds.
4. Checks: zero 5xx, every request answered 200 or 429 with Retry-After (no timeouts, no resets), and the
   worker's RSS after --rss-late requests within 10 % of its RSS after --rss-early requests.
Prints a Markdown table (the figures in docs/reliability.md come from it); exits 1 when a check fails.
Everything is bounded: requests per phase (--max-requests), per-request timeout, total wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import shutil
import statistics
import struct
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import psutil
import requests

from bench.support import free_port, start_gunicorn, stop, wait_ready

ROOT = Path(__file__).resolve().parents[1]
ENDPOINT = "/v1/audio/transcriptions"
SAMPLE_RATE = 16_000
PROBE_TIMEOUT = 10.0  # seconds a /readyz probe may take under load (load balancers allow ~5-10)
RSS_TOLERANCE = 0.10  # RSS after --rss-late requests may exceed RSS after --rss-early by this fraction
# no temperature fallback: with random weights it would retry a window up to 6 times (best_of 5) at random,
# so one request would cost 1 to ~30 decoder passes; this way every request costs the same
FORM = {"language": "en", "compression_ratio_threshold": "100", "logprob_threshold": "-100"}


@dataclass(frozen=True)
class LoadConfig:
    # the overload phase
    duration: float = 60.0  # seconds of arrivals at factor x capacity
    factor: float = 2.0  # arrival rate / measured capacity
    # the capacity phase
    capacity_seconds: float = 20.0  # seconds of closed-loop load
    clients: int = 8  # closed-loop clients (enough to fill the batches)
    # requests
    clip_seconds: float = 3.0  # one short window per request
    timeout: float = 180.0  # seconds; a request still unanswered by then counts as a failure
    max_requests: int = 5000  # per phase, whatever the rate
    max_in_flight: int = 512  # client threads in the overload phase
    # memory
    rss_early: int = 100  # requests answered before the first RSS sample
    rss_late: int = 1000  # ... and before the second


@dataclass
class Outcome:
    status: int | None  # None: no HTTP answer (timeout, reset)
    seconds: float
    retry_after: str | None = None
    error: str | None = None


@dataclass
class Report:
    machine: str
    capacity_rps: float = 0.0
    offered_rps: float = 0.0
    sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    p50_seconds: float | None = None
    p99_seconds: float | None = None
    max_seconds: float | None = None
    rss_early_mib: float | None = None
    rss_late_mib: float | None = None
    probe_max_seconds: float | None = None  # slowest /readyz answer during the overload
    probe_failures: int = 0  # /readyz probes without a 200 within PROBE_TIMEOUT
    answered: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


# -- the clip and the server ---------------------------------------------------------------------------------
def clip(seconds: float) -> bytes:
    """A mono 16-bit WAV: a tone with a slow tremolo (any audio exercises the path; text is not checked)."""
    n = int(seconds * SAMPLE_RATE)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(b"".join(struct.pack("<h", sample(i)) for i in range(n)))
    return buffer.getvalue()


def sample(i: int) -> int:
    tremolo = (1 + math.sin(i / 2000)) / 2
    return int(9000 * tremolo * math.sin(2 * math.pi * 300 * i / SAMPLE_RATE))


@contextlib.contextmanager
def local_server(model: str | None, env: dict[str, str], log_path: Path) -> Iterator[tuple[str, int]]:
    """gunicorn on 127.0.0.1 exactly as `make run` starts it; yields (url, master pid); SIGTERM at the end."""
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        if model is None:
            from tools.checkpoints import build_checkpoint

            model = str(build_checkpoint(Path(tmp) / "test.pt"))
        port = free_port()
        full_env = {
            **os.environ,
            "WHISPER_MODEL": model,
            "WHISPER_DEVICE": "cpu",
            "PORT": str(port),
            "METRICS_PORT": str(free_port()),
            "METRICS_HOST": "127.0.0.1",
            "PROMETHEUS_MULTIPROC_DIR": os.path.join(tmp, "prom"),
            "WHISPER_FORCE_TOKENS": "8",
            "GRACEFUL_TIMEOUT": "30",
            "VAD": "false",
            **env,
        }
        server = start_gunicorn(full_env, log_path, port)
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_ready(url, lambda: server.poll() is None)
            except RuntimeError as error:
                raise SystemExit(f"{error}; see its log") from None
            yield url, server.pid
        finally:
            stop(server)


def worker_rss(master_pid: int) -> float:
    """Resident memory of the server's workers, MiB."""
    return sum(p.memory_info().rss for p in psutil.Process(master_pid).children()) / 2**20


# -- requests ------------------------------------------------------------------------------------------------
class Client:
    """Sends the clip; counts answers and samples the workers' RSS after the early and late counts."""

    def __init__(self, url: str, master_pid: int, body: bytes, cfg: LoadConfig, headers: dict):
        self.url, self.master_pid, self.body, self.cfg, self.headers = url, master_pid, body, cfg, headers
        self.answered = 0
        self.rss: dict[int, float] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def send(self) -> Outcome:
        session = getattr(self._local, "session", None) or requests.Session()
        self._local.session = session
        began = time.monotonic()
        try:
            files = {"file": ("clip.wav", self.body)}
            resp = session.post(
                self.url + ENDPOINT, files=files, data=FORM, headers=self.headers, timeout=self.cfg.timeout
            )
            outcome = Outcome(resp.status_code, time.monotonic() - began, resp.headers.get("Retry-After"))
        except requests.RequestException as error:
            outcome = Outcome(None, time.monotonic() - began, error=type(error).__name__)
        self._count()
        return outcome

    def _count(self) -> None:
        with self._lock:
            self.answered += 1
            if self.answered in (self.cfg.rss_early, self.cfg.rss_late):
                self.rss[self.answered] = worker_rss(self.master_pid)


def measure_capacity(client: Client, cfg: LoadConfig) -> tuple[float, list[Outcome]]:
    """Successful requests per second with cfg.clients clients sending back to back."""
    outcomes: list[Outcome] = []
    end = time.monotonic() + cfg.capacity_seconds
    budget = iter(range(cfg.max_requests))

    def loop() -> None:
        while time.monotonic() < end and next(budget, None) is not None:
            outcomes.append(client.send())

    began = time.monotonic()
    threads = [threading.Thread(target=loop, daemon=True) for _ in range(cfg.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(cfg.capacity_seconds + cfg.timeout)
    elapsed = time.monotonic() - began
    return sum(o.status == 200 for o in outcomes) / elapsed, outcomes


def overload(client: Client, cfg: LoadConfig, rate: float) -> tuple[list[Outcome], list[Outcome]]:
    """Requests arriving evenly at `rate` per second for cfg.duration seconds, whatever the answers;
    meanwhile /readyz once a second, as a load balancer would. Returns (requests, probes)."""
    count = min(cfg.max_requests, max(1, int(rate * cfg.duration)))
    began = time.monotonic()
    probes: list[Outcome] = []
    stop = threading.Event()
    prober = threading.Thread(target=probe_until, args=(client.url, stop, probes), daemon=True)
    prober.start()
    with ThreadPoolExecutor(max_workers=cfg.max_in_flight) as pool:
        futures = []
        for i in range(count):
            delay = began + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(client.send))
        stop.set()
        prober.join(PROBE_TIMEOUT + 5)
        return [f.result(timeout=cfg.timeout + 30) for f in futures], probes


def probe_until(url: str, stop: threading.Event, probes: list[Outcome]) -> None:
    while not stop.wait(1.0):
        began = time.monotonic()
        try:
            status = requests.get(url + "/readyz", timeout=PROBE_TIMEOUT).status_code
            probes.append(Outcome(status, time.monotonic() - began))
        except requests.RequestException as error:
            probes.append(Outcome(None, time.monotonic() - began, error=type(error).__name__))


# -- the report ----------------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def judge(report: Report, outcomes: list[Outcome], cfg: LoadConfig, client: Client) -> None:
    statuses: dict[str, int] = {}
    for o in outcomes:
        key = str(o.status) if o.status is not None else (o.error or "no answer")
        statuses[key] = statuses.get(key, 0) + 1
    report.statuses = dict(sorted(statuses.items()))
    accepted = sorted(o.seconds for o in outcomes if o.status == 200)
    report.p50_seconds, report.p99_seconds = percentile(accepted, 50), percentile(accepted, 99)
    report.max_seconds = accepted[-1] if accepted else None
    report.answered = client.answered
    report.rss_early_mib, report.rss_late_mib = client.rss.get(cfg.rss_early), client.rss.get(cfg.rss_late)
    if any(o.status is not None and o.status >= 500 for o in outcomes):
        report.failures.append("5xx answers")
    if set(report.statuses) - {"200", "429"}:
        report.failures.append(f"answers other than 200/429: {report.statuses}")
    if any(o.status == 429 and not (o.retry_after or "").isdigit() for o in outcomes):
        report.failures.append("429 without a Retry-After")
    if report.rss_early_mib and report.rss_late_mib:
        if report.rss_late_mib > report.rss_early_mib * (1 + RSS_TOLERANCE):
            report.failures.append(
                f"RSS grew from {report.rss_early_mib:.0f} to {report.rss_late_mib:.0f} MiB"
            )


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} x {cpu}, {memory:.0f} GiB, {platform.system()} {platform.release()}"


def markdown(report: Report, cfg: LoadConfig) -> str:
    def fmt(value: float | None, unit: str = "") -> str:
        return "n/a" if value is None else f"{value:.2f}{unit}"

    latency = (
        f"p50 {fmt(report.p50_seconds, ' s')}, p99 {fmt(report.p99_seconds, ' s')}, "
        f"max {fmt(report.max_seconds, ' s')}"
    )
    offered = f"{report.offered_rps:.2f} requests/s for {cfg.duration:g} s ({report.sent} requests)"
    rows = [
        ("machine", report.machine),
        (
            f"capacity (closed loop, {cfg.clients} clients, {cfg.capacity_seconds:g} s)",
            f"{report.capacity_rps:.2f} requests/s",
        ),
        ("offered load", offered),
        ("answers", ", ".join(f"{k}: {v}" for k, v in report.statuses.items())),
        ("latency of accepted requests", latency),
        (
            f"worker RSS after {cfg.rss_early} / {cfg.rss_late} requests",
            f"{fmt(report.rss_early_mib, ' MiB')} / {fmt(report.rss_late_mib, ' MiB')}",
        ),
        (
            "/readyz during the overload (1/s)",
            f"slowest {fmt(report.probe_max_seconds, ' s')}, {report.probe_failures} without 200",
        ),
        ("requests answered in all", str(report.answered)),
        ("verdict", "PASS" if report.ok else "FAIL: " + "; ".join(report.failures)),
    ]
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def run(url: str, master_pid: int, cfg: LoadConfig, headers: dict | None = None) -> Report:
    """Capacity, then overload at cfg.factor x capacity, against a running server on loopback."""
    host = urlparse(url).hostname or ""
    if not (host == "localhost" or host.startswith("127.")):
        raise SystemExit(f"loopback only: {url}")
    report = Report(machine())
    client = Client(url, master_pid, clip(cfg.clip_seconds), cfg, headers or {})
    report.capacity_rps, warmup = measure_capacity(client, cfg)
    if report.capacity_rps <= 0:
        judge(report, warmup, cfg, client)
        report.failures.append("no request succeeded in the capacity phase")
        return report
    report.offered_rps = cfg.factor * report.capacity_rps
    outcomes, probes = overload(client, cfg, report.offered_rps)
    report.sent = len(outcomes)
    judge(report, warmup + outcomes, cfg, client)
    report.probe_max_seconds = max((p.seconds for p in probes), default=None)
    report.probe_failures = sum(p.status != 200 for p in probes)
    if report.probe_failures:
        report.failures.append(f"{report.probe_failures} of {len(probes)} /readyz probes failed")
    return report


def main(argv: list[str] | None = None) -> int:
    defaults = LoadConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, value in asdict(defaults).items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    parser.add_argument("--model", help="WHISPER_MODEL for the server (default: the random test checkpoint)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="server setting")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--log", type=Path, default=Path("build/loadtest-server.log"))
    args = parser.parse_args(argv)
    cfg = LoadConfig(**{name: getattr(args, name) for name in asdict(defaults)})
    env = dict(item.split("=", 1) for item in args.env)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg not found: run make system-deps")
    with local_server(args.model, env, args.log) as (url, master_pid):
        report = run(url, master_pid, cfg)
    print(markdown(report, cfg))
    if args.json:
        args.json.write_text(
            json.dumps({**asdict(report), "config": asdict(cfg), "server_env": env}, indent=2)
        )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
