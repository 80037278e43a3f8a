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
The server and the clip: bench/loopback.py; the figures, their checks and the table: bench/loadtest_report.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests

from bench.loadtest_report import Outcome, Report, judge, markdown
from bench.loopback import clip, local_server, machine, worker_rss

ROOT = Path(__file__).resolve().parents[1]
ENDPOINT = "/v1/audio/transcriptions"
PROBE_TIMEOUT = 10.0  # seconds a /readyz probe may take under load (load balancers allow ~5-10)
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
