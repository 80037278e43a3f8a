"""`make cost`: what an hour of audio costs on this deployment, from the VM's live Prometheus.

    python -m deploy.cost                                   # through the SSH tunnel of `make dashboards`
    python -m deploy.cost --prometheus http://127.0.0.1:PORT  # a Prometheus already reachable (no tunnel)

It opens the deploy's one SSH route (deploy/sshroute.py: OS Login user, gcloud's key, Google's IAP tunnel),
the route `make dashboards` uses, forwarding a free local port to the VM's Prometheus on its loopback, reads
the whisper.cost recording rules (monitoring/prometheus/rules/whisper-cost.yml) and closes the tunnel.
Standard library only, like the dashboards tunnel: the system python3 runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from deploy import sshroute
from deploy.config import ConfigError, DeployConfig

PRICE = "job:vm_price_dollars_per_hour:max"
NOW = ("job:whisper_cost_dollars_per_audio_hour:rate5m", "job:whisper_audio_seconds:rate5m")
BEST = ("job:whisper_cost_dollars_per_audio_hour:best1h_1d", "job:whisper_audio_seconds:best1h_1d")
TUNNEL_TIMEOUT_S = float(os.environ.get("COST_TUNNEL_TIMEOUT_S", "60"))
Query = Callable[[str], list[dict]]


def prometheus_query(base: str) -> Query:
    def query(expr: str) -> list[dict]:
        url = f"{base.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=15) as answer:  # noqa: S310 (a loopback http URL)
            body = json.load(answer)
        if body.get("status") != "success":
            raise ConfigError(f"Prometheus refused {expr}: {body.get('error')}")
        return body["data"]["result"]

    return query


def report(query: Query) -> list[str]:
    """The lines `make cost` prints; ConfigError when the VM has no price."""
    price = query(PRICE)
    if not price:
        raise ConfigError(
            "Prometheus has no vm_price_dollars_per_hour: the stack has no price for its machine (set "
            "pulumi config set pricePerHour USD_PER_HOUR, then make infra), or the VM has not booted since "
            "(its startup script writes the price: sudo google_metadata_script_runner startup)"
        )
    labels, per_hour = price[0]["metric"], float(price[0]["value"][1])
    lines = [
        f"VM price           ${per_hour:.4f}/h  {labels.get('machine_type')} with "
        f"{labels.get('gpu_count')} x {labels.get('gpu_type')}, {labels.get('provisioning')} "
        f"({_basis(labels.get('basis'))})"
    ]
    for title, (cost_record, rate_record), absent in (
        ("now (5 min)", NOW, "no audio transcribed in the last 5 minutes"),
        ("best hour, 1 day", BEST, "no audio transcribed in the last day"),
    ):
        cost, rate = query(cost_record), query(rate_record)
        if not cost:
            lines.append(f"{title:<18} {absent}")
            continue
        dollars, realtime = float(cost[0]["value"][1]), float(rate[0]["value"][1])
        lines.append(f"{title:<18} ${dollars:.4f} per audio hour at {realtime:.1f}x realtime")
    return lines


def _basis(basis: str | None) -> str:
    if basis == "override":
        return "the stack's pricePerHour"
    return "list price as of 2025 in infra/pricing.py, unverified: set pricePerHour to correct it"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def tunnel(remote_port: int, timeout: float = TUNNEL_TIMEOUT_S) -> Iterator[str]:
    """An SSH tunnel from a free local port to the VM's Prometheus, by the dashboards' route."""
    local = free_port()
    command = sshroute.tunnel_command(
        sshroute.route(),
        [f"127.0.0.1:{local}:127.0.0.1:{remote_port}"],
        os.environ.get("TUNNEL_SSH") or "ssh",
    )
    ssh = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)  # noqa: S603
    base = f"http://127.0.0.1:{local}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if ssh.poll() is not None:
                raise ConfigError(f"the SSH tunnel ended (exit {ssh.returncode}); make dashboards shows why")
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=5):  # noqa: S310
                    break
            except (OSError, urllib.error.URLError):
                if time.monotonic() >= deadline:
                    raise ConfigError(
                        f"the VM's Prometheus did not answer through the tunnel in {timeout:g} s"
                    ) from None
                time.sleep(0.5)
        yield base
    finally:
        ssh.terminate()
        try:
            ssh.wait(10)
        except subprocess.TimeoutExpired:
            ssh.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.cost", description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default=os.environ.get("PROMETHEUS_URL") or None)
    parser.add_argument(
        "--remote-port",
        type=int,
        default=int(os.environ.get("PROMETHEUS_REMOTE_PORT") or DeployConfig().prometheus_port),
    )
    args = parser.parse_args(argv)
    try:
        if args.prometheus:
            lines = report(prometheus_query(args.prometheus))
        else:
            with tunnel(args.remote_port) as base:
                lines = report(prometheus_query(base))
    except (ConfigError, OSError, urllib.error.URLError) as err:
        print(f"make cost: {err}", file=sys.stderr)
        return 1
    print("Cost per audio hour (the VM's Prometheus, whisper.cost rules):")
    for line in lines:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
