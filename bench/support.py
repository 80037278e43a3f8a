"""What the benchmarks and the tests both need to run the service: a free port, gunicorn started as
`make run` starts it (the forced app when the environment asks for it, bench/forced.py), and a wait until
/readyz answers 200. One copy, imported by bench/ and tests/."""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import requests

from bench.forced import app_argument

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def free_port() -> int:
    """A TCP port free on every interface now, picked below the kernel's ephemeral range. The kernel's own
    pick (bind to port 0) comes from that range, where every outgoing connection also takes its local port:
    a server started a moment later could find its port taken by a client socket (CI saw gunicorn exit on
    an API_HOST=0.0.0.0 bind). Ports under the range are only ever taken by listeners that ask for them."""
    low, _ = ephemeral_range()
    pick = random.SystemRandom()
    for _ in range(200):
        port = pick.randrange(10000, low) if low > 11000 else 0
        with socket.socket() as s:
            # as servers bind: a port in TIME_WAIT is no conflict
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free TCP port found in 200 tries")


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for local ports of outgoing connections (Linux's default when unreadable)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def gunicorn_command(env: Mapping[str, str], port: int | None = None) -> list[str]:
    """`make run`'s command (gunicorn -c gunicorn.conf.py), bound to 127.0.0.1:`port` when given."""
    bind = ["--bind", f"127.0.0.1:{port}"] if port else []
    return [GUNICORN, "-c", "gunicorn.conf.py", *bind, *app_argument(env)]


def start_gunicorn(env: Mapping[str, str], log: Path, port: int | None = None) -> subprocess.Popen:
    """gunicorn in its own session (so a stop reaches its workers), its output in `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            gunicorn_command(env, port),
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen, seconds: float = 60) -> int | None:
    """SIGTERM (gunicorn drains), then SIGKILL after `seconds`; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.returncode


def wait_ready(url: str, alive: Callable[[], bool], timeout: float = 180, interval: float = 0.2) -> None:
    """Poll `url`/readyz until it answers 200; RuntimeError when `alive()` turns false or time is up."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not alive():
            raise RuntimeError(f"{url} exited before it was ready")
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or still loading its model
            pass
        time.sleep(interval)
    raise RuntimeError(f"{url} not ready within {timeout:g} s")
