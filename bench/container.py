"""The image against `make run`: the same long real-speech file through both, side by side in one run.

    python -m bench.container                         # 14-min mp3, 2 rounds -> docs/benchmarks-container.md
    python -m bench.container --minutes 3 --rounds 1  # a quick look, printed only with --out -

Both sides serve the embedded tiny.en (openai-whisper engine) with every setting at its default, as a user
would start them: `make run` is gunicorn from this checkout's virtualenv (the CPU build of torch); the
container is the image (`whisper-service:test`, built by `make image-test`, or --image) under the real Docker
engine, with the CUDA build of torch from PyPI running on the CPU. Rounds alternate which side goes first,
so drift in the machine hits both alike. Target (issue #24): the container within 15% of `make run`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from service.settings import DEFAULTS
from tools import embedded, speech

from .service_bench import transcribe
from .speech import audio_seconds, corpus
from .support import free_port, start_gunicorn, stop, wait_ready

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.85  # the container's speed as a share of make run's, at least
READY_SECONDS = 300


class MakeRun:
    """`make run`'s command on loopback: gunicorn -c gunicorn.conf.py with the embedded model."""

    name = "make run (venv, CPU torch)"

    def __init__(self, log_dir: Path):
        self.port, self.log = free_port(), log_dir / "make-run.log"
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MakeRun:
        env = {
            **os.environ,
            "WHISPER_MODEL": str(embedded.checkpoint()),
            "PORT": str(self.port),
            "METRICS_PORT": str(free_port()),
            "METRICS_HOST": "127.0.0.1",
        }
        self.process = start_gunicorn(env, self.log)
        wait_ready(self.url, lambda: self.process.poll() is None, READY_SECONDS, interval=0.5)
        return self

    def __exit__(self, *exc) -> None:
        stop(self.process)


API_PORT = DEFAULTS.port  # the image sets no PORT: the service's default


class Container:
    """The image with `docker run`, its API port published on loopback."""

    def __init__(self, image: str):
        self.image, self.port = image, free_port()
        self.name, self.url = f"whisper-bench-{uuid.uuid4().hex[:8]}", f"http://127.0.0.1:{self.port}"
        self.label = f"container ({image}, CUDA torch on the CPU)"

    def __enter__(self) -> Container:
        subprocess.run(
            ["docker", "run", "--detach", "--name", self.name,
             "--publish", f"127.0.0.1:{self.port}:{API_PORT}", self.image], check=True, capture_output=True,
        )  # fmt: skip
        wait_ready(self.url, self.running, READY_SECONDS, interval=0.5)
        return self

    def running(self) -> bool:
        out = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Running}}", self.name], capture_output=True
        )
        return out.stdout.strip() == b"true"

    def __exit__(self, *exc) -> None:
        subprocess.run(["docker", "rm", "--force", self.name], capture_output=True)


def measure(args, work: Path) -> tuple[list[dict], float]:
    """One row per side: seconds per round and WER; the file's audio seconds."""
    long_file, _ = corpus(work, args.minutes, 0)
    seconds = audio_seconds(long_file)
    data = {"model": "whisper-1", "response_format": "json"}
    rows = []
    with MakeRun(work) as local, Container(args.image) as box:
        sides = [(MakeRun.name, local.url), (box.label, box.url)]
        results = {name: [] for name, _ in sides}
        for round_ in range(args.rounds):
            order = sides if round_ % 2 == 0 else sides[::-1]
            for name, url in order:
                print(f"round {round_ + 1}/{args.rounds}: {name}", file=sys.stderr)
                results[name].append(transcribe(url, long_file.path, data))
        for name, _ in sides:
            walls = [w for w, _ in results[name]]
            texts = [t for _, t in results[name]]
            rows.append(
                {
                    "side": name,
                    "walls": walls,
                    "x_realtime": seconds * len(walls) / sum(walls),
                    "wer": speech.wer([long_file.text] * len(texts), texts),
                }
            )
    return rows, seconds


def markdown(args, rows: list[dict], seconds: float) -> str:
    local, box = rows
    ratio = box["x_realtime"] / local["x_realtime"]
    lines = [
        "# The container against `make run` (`make bench-container`)",
        "",
        f"Made by `python -m bench.container` on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
        f"{args.rounds} rounds alternating the order; one {seconds / 60:.1f}-minute mp3 of espeak-ng speech "
        "(tools/speech.py), the embedded tiny.en, every setting at its default.",
        "",
        "| side | seconds per round | x realtime | WER |",
        "|---|---|---:|---:|",
        *(
            f"| {r['side']} | {', '.join(f'{w:.1f}' for w in r['walls'])} | {r['x_realtime']:.1f} | "
            f"{r['wer']:.1%} |"
            for r in rows
        ),
        "",
        f"Container speed / make run speed: **{ratio:.2f}x** (target >= {TARGET:.2f}: "
        f"{'met' if ratio >= TARGET else 'NOT met'}); WER {box['wer']:.1%} against {local['wer']:.1%}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--image", default="whisper-service:test", help="the image to run (make image-test)")
    parser.add_argument("--minutes", type=float, default=14.0, help="length of the long file")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks-container.md"), help="- prints only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-container-") as tmp:
        rows, seconds = measure(args, Path(tmp))
    text = markdown(args, rows, seconds)
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
