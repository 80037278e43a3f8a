"""Slow-loris uploads against a server on loopback, while /readyz is probed and a normal request is sent.

    python -m bench.slowloris                  # starts gunicorn (random test checkpoint), 200 trickles
    python -m bench.slowloris --connections 40 --duration 20
    python -m bench.slowloris --url http://127.0.0.1:8080 --key sk-...   # a running server or proxy

Each attacker opens a connection, sends the headers of a multipart upload that announces --body-mib MiB,
then --chunk bytes every --interval seconds (10 bytes every 0.5 s: 20 B/s), or with --phase headers sends
its request headers that slowly instead (--phase silent: connects and sends nothing). One thread drives
every attacker through a selector (hundreds of sockets cost almost nothing). Meanwhile /readyz is probed
every --probe-interval seconds and, after --normal-after seconds, one normal 3 s transcription is sent.
Reported: probe latencies, the normal request's status and time, when and how the server closed each
attacker (status line if any), and the upload temp files the server still holds (files in its TMPDIR and
the worker's open descriptors there).

Everything is bounded: --connections (at most 1000), --duration (at most 300 s), every client timeout.
Loopback only. The attackers themselves: bench/trickle.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import requests

from bench.loadtest import ENDPOINT, FORM
from bench.loadtest_report import percentile
from bench.loopback import clip, local_server
from bench.trickle import Attacker, Trickle

MAX_DURATION = 300.0


@dataclass
class Figures:
    connections: int
    connected: int = 0
    probes: int = 0
    probe_failures: int = 0
    probe_p50: float | None = None
    probe_max: float | None = None
    normal_status: int | str | None = None
    normal_seconds: float | None = None
    closed_by_server: int = 0
    close_after_min: float | None = None
    close_after_max: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    tmp_files_during: int | None = None
    tmp_left: int | None = None


def probe(url: str, timeout: float = 20.0) -> tuple[int | None, float]:
    began = time.monotonic()
    try:
        status = requests.get(url + "/readyz", timeout=timeout).status_code
    except requests.RequestException:
        status = None
    return status, time.monotonic() - began


def normal_request(url: str, headers: dict | None = None, timeout: float = 60.0) -> tuple[int | str, float]:
    began = time.monotonic()
    try:
        resp = requests.post(
            url + ENDPOINT,
            files={"file": ("clip.wav", clip(3.0))},
            data=FORM,
            headers=headers or {},
            timeout=timeout,
        )
        status: int | str = resp.status_code
    except requests.RequestException as error:
        status = type(error).__name__
    return status, time.monotonic() - began


def held_tmp_files(tmp_dir: str | None, master_pid: int | None) -> int | None:
    """Files in the server's TMPDIR plus its workers' open descriptors into it (unlinked spools too)."""
    if not tmp_dir:
        return None
    count = len(os.listdir(tmp_dir))
    if master_pid:
        for worker in psutil.Process(master_pid).children():
            fds = Path(f"/proc/{worker.pid}/fd")
            with contextlib.suppress(OSError):  # unlinked spools read "<dir>/#123 (deleted)" here
                targets = [os.readlink(fd) for fd in fds.iterdir()]
                count += sum(t.startswith(tmp_dir + "/") and "wgunicorn-" not in t for t in targets)
    return count


def attack(
    url: str, args, headers: dict, tmp_dir: str | None = None, master_pid: int | None = None
) -> Figures:
    trickle = Trickle(
        url,
        args.connections,
        interval=args.interval,
        chunk=args.chunk,
        phase=args.phase,
        body_mib=args.body_mib,
        headers=headers,
        sources=[f"127.0.0.{10 + i}" for i in range(args.sources)],
    )
    figures = Figures(args.connections)
    trickle.open()
    figures.connected = len(trickle.attackers)
    try:
        probes, normal = watch(url, args, headers, figures, tmp_dir, master_pid)
    finally:
        trickle.close()
    tally(figures, probes, normal, trickle.closed())
    return figures


def watch(
    url: str, args, headers: dict, figures: Figures, tmp_dir: str | None, master_pid: int | None
) -> tuple[list[tuple[int | None, float]], tuple]:
    """While the attack lasts: /readyz every --probe-interval seconds, the normal request after
    --normal-after seconds, and the temp files held then and at the end. Returns (probes, normal result)."""
    began = time.monotonic()
    probes: list[tuple[int | None, float]] = []
    normal: dict = {}
    sender = None
    while time.monotonic() - began < min(args.duration, MAX_DURATION):
        if sender is None and time.monotonic() - began >= args.normal_after:
            sender = threading.Thread(
                target=lambda: normal.update(result=normal_request(url, headers)), daemon=True
            )
            sender.start()
        probes.append(probe(url))
        if figures.tmp_files_during is None and time.monotonic() - began >= args.normal_after:
            figures.tmp_files_during = held_tmp_files(tmp_dir, master_pid)
        time.sleep(args.probe_interval)
    if sender is not None:
        sender.join(60)
    figures.tmp_left = held_tmp_files(tmp_dir, master_pid)
    return probes, normal.get("result", (None, None))


def tally(
    figures: Figures, probes: list[tuple[int | None, float]], normal: tuple, closed: list[Attacker]
) -> None:
    """The probes' latencies, the normal request's answer, and when and how the server closed attackers."""
    latencies = sorted(seconds for _, seconds in probes)
    figures.probes, figures.probe_failures = len(probes), sum(status != 200 for status, _ in probes)
    figures.probe_p50, figures.probe_max = percentile(latencies, 50), (latencies[-1] if latencies else None)
    figures.normal_status, figures.normal_seconds = normal
    figures.closed_by_server = len(closed)
    if closed:
        figures.close_after_min = min(a.closed_at for a in closed)
        figures.close_after_max = max(a.closed_at for a in closed)
    for attacker in closed:
        key = attacker.status or "closed without an answer"
        figures.statuses[key] = figures.statuses.get(key, 0) + 1


def markdown(figures: Figures, args) -> str:
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f} s"

    rows = [
        (
            "attack",
            f"{figures.connections} connections ({figures.connected} connected), {args.chunk} "
            f"bytes of {args.phase} every {args.interval:g} s, {args.duration:g} s",
        ),
        (
            "/readyz",
            f"{figures.probes} probes, p50 {fmt(figures.probe_p50)}, max {fmt(figures.probe_max)}, "
            f"{figures.probe_failures} without 200",
        ),
        (
            f"normal request (sent at {args.normal_after:g} s)",
            f"{figures.normal_status} in {fmt(figures.normal_seconds)}",
        ),
        (
            "attackers closed by the server",
            f"{figures.closed_by_server}, after {fmt(figures.close_after_min)} to "
            f"{fmt(figures.close_after_max)}",
        ),
        ("answers to attackers", ", ".join(f"{k}: {v}" for k, v in figures.statuses.items()) or "none"),
        ("upload temp files held (during / at the end)", f"{figures.tmp_files_during} / {figures.tmp_left}"),
    ]
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server (default: start one on loopback)")
    parser.add_argument("--key", help="API key for the normal request and the attackers")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--phase", choices=("body", "headers", "silent"), default="body")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--body-mib", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--normal-after", type=float, default=5.0)
    parser.add_argument("--probe-interval", type=float, default=0.5)
    parser.add_argument("--sources", type=int, default=0, help="spread attackers over 127.0.0.10...")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="server setting")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--log", type=Path, default=Path("build/slowloris-server.log"))
    args = parser.parse_args(argv)
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    if args.url:
        figures = attack(args.url, args, headers)
    else:
        env = dict(item.split("=", 1) for item in args.env)
        args.log.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="slowloris-tmp-") as tmp_dir:
            env.setdefault("TMPDIR", tmp_dir)
            with local_server(None, env, args.log) as (url, master_pid):
                figures = attack(url, args, headers, env["TMPDIR"], master_pid)
    print(markdown(figures, args))
    if args.json:
        args.json.write_text(json.dumps({**asdict(figures), "args": vars(args)}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
