#!/usr/bin/env python3
"""The single VM's idle watch: stop this VM when no request has reached the Whisper service for
`idleStopMinutes` (stack setting; the instance metadata attribute whisper-idle-stop-minutes).

startup.sh installs it from the metadata attribute whisper-idle-stop-script and runs it once a minute
(systemd timer whisper-idle-stop.timer) when the stack sets idleStopMinutes. It reads the service's own
metrics (both blue/green ports): a request is any whisper_requests_total sample outside the probes
(/healthz, /readyz), and whisper_requests_in_flight > 0 counts as activity too. The clock is kept in
STATE_FILE on tmpfs, so every boot starts it afresh:

- any change of a port's request count (a new request, or a counter reset by a restarted container; a new
  colour's first requests) or a request in flight restarts the clock; probes do not;
- metrics that do not answer count as "no request" once the service has answered since boot; before it ever
  answers (first boot, Ansible, the first deploy) the VM gets SETUP_GRACE_MINUTES more.

When the time is up it asks Compute Engine to stop this VM (instances.stop) with the VM's own service
account token from the metadata server. That account holds one permission, compute.instances.stop, on this
instance only (infra/gpu_vm.py). Python 3.10 standard library only: it runs on the host's python3.

    python3 idle_stop.py [--minutes N] [--now EPOCH]     # --now: for tests, the clock to judge by
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

METADATA_URL = os.environ.get("METADATA_URL", "http://metadata.google.internal/computeMetadata/v1")
COMPUTE_URL = os.environ.get("COMPUTE_URL", "https://compute.googleapis.com/compute/v1")
# blue's and green's /metrics; infra/host.py fills in the deploy's ports (deploy/config.py) as it ships it
METRICS_URLS = os.environ.get(
    "METRICS_URLS",
    "http://127.0.0.1:@BLUE_METRICS_PORT@/metrics http://127.0.0.1:@GREEN_METRICS_PORT@/metrics",
)
STATE_FILE = Path(os.environ.get("IDLE_STOP_STATE", "@RUN_DIR@/idle-stop.json"))  # RUN_DIR: deploy/paths.py
MINUTES_ATTRIBUTE = "instance/attributes/whisper-idle-stop-minutes"
PROBES = frozenset({"/healthz", "/readyz"})
SETUP_GRACE_MINUTES = 60  # before the service first answers after a boot: driver, Ansible, image pull
TIMEOUT_S = 10
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
ENDPOINT = re.compile(r'endpoint="(?P<endpoint>(?:[^"\\]|\\.)*)"')


def log(message: str) -> None:
    print(f"whisper-idle-stop: {message}", flush=True)


def get(url: str, headers: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (fixed http(s) URLs)
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:  # noqa: S310
        return answer.read().decode()


def metadata(path: str) -> str:
    return get(f"{METADATA_URL}/{path}", {"Metadata-Flavor": "Google"}).strip()


def activity(text: str) -> tuple[float, float]:
    """(requests outside the probes, requests in flight) in one exposition text."""
    requests = in_flight = 0.0
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match:
            continue
        if match["name"] == "whisper_requests_total":
            endpoint = ENDPOINT.search(match["labels"] or "")
            if endpoint is None or endpoint["endpoint"] not in PROBES:
                requests += float(match["value"])
        elif match["name"] == "whisper_requests_in_flight":
            in_flight += float(match["value"])
    return requests, in_flight


def observe(urls: list[str]) -> dict[str, tuple[float, float]]:
    """(requests, in flight) per metrics port that answers."""
    texts = {url: _scrape(url) for url in urls}
    return {url: activity(text) for url, text in texts.items() if text is not None}


def _scrape(url: str) -> str | None:
    try:
        return get(url)
    except (OSError, urllib.error.URLError):
        return None


def decide(state: dict, seen: dict[str, tuple[float, float]], now: float, minutes: int) -> tuple[dict, bool]:
    """The new state, and whether the VM has been idle long enough to stop. Counts are compared per port: a
    blue/green deploy starts the new colour's counters at zero, and its first requests must still count."""
    state = dict(state) or {"boot": now, "since": now, "counts": {}, "answered": False}
    if seen:
        before = state["counts"]
        changed = any(count != before.get(url, 0.0) for url, (count, _) in seen.items())
        busy = any(in_flight > 0 for _, in_flight in seen.values())
        if changed or busy or not state["answered"]:
            state["since"] = now
        state.update(counts={url: count for url, (count, _) in seen.items()}, answered=True)
    if state["answered"]:
        deadline = state["since"] + minutes * 60
    else:
        deadline = state["boot"] + (minutes + SETUP_GRACE_MINUTES) * 60
    return state, now >= deadline


def stop_this_vm() -> None:
    """instances.stop on this VM, as its own service account (the narrowest seam: one HTTPS call)."""
    token = json.loads(metadata("instance/service-accounts/default/token"))["access_token"]
    project = metadata("project/project-id")
    zone = metadata("instance/zone").rsplit("/", 1)[-1]
    name = metadata("instance/name")
    url = f"{COMPUTE_URL}/projects/{project}/zones/{zone}/instances/{name}/stop"
    request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:  # noqa: S310
        log(f"asked Compute Engine to stop {name} in {zone}: HTTP {answer.status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stop this VM after idleStopMinutes without a request.")
    parser.add_argument("--minutes", type=int, default=None, help="default: the metadata attribute")
    parser.add_argument("--now", type=float, default=None, help="epoch seconds (tests); default: the clock")
    args = parser.parse_args(argv)
    minutes = args.minutes
    if minutes is None:
        try:
            minutes = int(metadata(MINUTES_ATTRIBUTE))
        except (OSError, ValueError, urllib.error.URLError):
            log("no whisper-idle-stop-minutes in the metadata: idle stop is off")
            return 0
    now = time.time() if args.now is None else args.now
    state = json.loads(STATE_FILE.read_text()) if STATE_FILE.is_file() else {}
    state, idle = decide(state, observe(METRICS_URLS.split()), now, minutes)
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps(state))
    if not idle:
        return 0
    log(f"no request for {minutes} min (since {time.strftime('%H:%M:%S', time.gmtime(state['since']))} UTC)")
    try:
        stop_this_vm()
    except (OSError, ValueError, KeyError, urllib.error.URLError) as err:
        log(f"could not stop the VM ({err}); the next run tries again")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
