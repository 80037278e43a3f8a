"""Run inside a private network namespace (`unshare -n`): starts node-exporter and Prometheus on the loopback
ports the installed stack gives them on the VM (the deploy's knobs, deploy/config.py) with the given
prometheus.yml and the targets files installed beside it, waits until Prometheus has scraped every target
of the config once (and both of them successfully), and prints `up` per job as JSON.

    unshare -n python netns_scrape.py <prometheus.yml> <tsdb dir> <deadline seconds>
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for deploy/
from deploy.config import DeployConfig  # noqa: E402

JOBS = ("node", "prometheus")  # the targets that exist in this namespace
PORTS = DeployConfig()


def start(stack: ExitStack, command: list[str]) -> None:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.callback(process.wait, timeout=10)
    stack.callback(process.terminate)


def target_count(config: str) -> int:
    """The targets in every job's file_sd files (relative to the config's folder, as Prometheus has it)."""
    folder = Path(config).parent
    scrape_configs = yaml.safe_load(Path(config).read_text())["scrape_configs"]
    files = [folder / name for job in scrape_configs for sd in job["file_sd_configs"] for name in sd["files"]]
    return sum(len(group["targets"]) for path in files for group in json.loads(path.read_text()))


def done(seen: dict[str, list[float]], targets: int) -> bool:
    scraped = sum(len(values) for values in seen.values())
    return scraped == targets and all(seen.get(job) == [1.0] for job in JOBS)


def up_by_job() -> dict[str, list[float]]:
    url = f"http://127.0.0.1:{PORTS.prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": "up"})
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body = json.load(response)
    except OSError:
        return {}
    result: dict[str, list[float]] = {}
    for sample in body["data"]["result"]:
        result.setdefault(sample["metric"]["job"], []).append(float(sample["value"][1]))
    return result


def main(config: str, tsdb: str, deadline_s: float) -> int:
    targets = target_count(config)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with ExitStack() as stack:
        node = f"--web.listen-address=127.0.0.1:{PORTS.node_exporter_port}"
        start(stack, ["prometheus-node-exporter", node])
        start(
            stack,
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tsdb}",
                f"--web.listen-address=127.0.0.1:{PORTS.prometheus_port}",
            ],
        )
        deadline = time.monotonic() + deadline_s
        seen: dict[str, list[float]] = {}
        while time.monotonic() < deadline:
            seen = up_by_job()
            if done(seen, targets):
                break
            time.sleep(0.5)
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
