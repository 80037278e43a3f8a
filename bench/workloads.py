"""The workloads of bench/speech.py, each against one side: a server over HTTP, or an in-process peer.

    clips(runs, url, data, files, concurrency)   every clip once, `concurrency` requests in flight
    at_once(runs, url, data, files)              all files at once (4 long files)
    mix(long_runs, clip_runs, url, data, ...)    one long file, and clips arriving every `interval` s while
                                                 it runs (each clip's latency, and the long file's)
    in_process(runs, side, model, files, ...)    the files one after another in bench.peers (own process)

`Runs` keeps (audio seconds, latency, reference, text) per file and the wall time of all rounds, so x realtime
counts the side's concurrency: 16 clips in flight at once take less wall time than the sum of their latencies.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tools import speech

from .service_bench import nearest_rank, transcribe

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Runs:
    """One side in one workload over all rounds."""

    name: str
    files: list[tuple[float, float, str, str]] = field(default_factory=list)
    wall: float = 0.0  # seconds for all files of all rounds (for concurrent sides, less than their sum)
    peak_rss: int = 0

    def add(self, audio: float, seconds: float, reference: str, text: str) -> None:
        self.files.append((audio, seconds, reference, text))

    @property
    def x_realtime(self) -> float:
        return sum(f[0] for f in self.files) / self.wall if self.wall else 0.0

    @property
    def wer(self) -> float:
        return speech.wer([f[2] for f in self.files], [f[3] for f in self.files])

    def percentile(self, q: float) -> float:
        return nearest_rank([f[1] for f in self.files], q)


def clips(
    runs: Runs, url: str, data: dict, files: list[speech.Clip], durations: dict, concurrency: int
) -> None:
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda clip: transcribe(url, clip.path, data), files))
    runs.wall += time.perf_counter() - began
    for clip, (seconds, text) in zip(files, results):
        runs.add(durations[clip.path], seconds, clip.text, text)


def at_once(runs: Runs, url: str, data: dict, files: list[speech.Clip], durations: dict) -> None:
    clips(runs, url, data, files, durations, len(files))


def mix(
    long_runs: Runs,
    clip_runs: Runs,
    url: str,
    data: dict,
    long_file: speech.Clip,
    files: list[speech.Clip],
    durations: dict,
    interval: float,
) -> None:
    """The long file, and a clip every `interval` s (open loop: arrivals do not wait for answers) from
    `interval` / 2 on, while the long file is in flight; at least one clip, at most one of each."""
    with ThreadPoolExecutor(len(files) + 1) as pool:
        began = time.perf_counter()
        long_answer = pool.submit(transcribe, url, long_file.path, data)
        sent = []
        for i, clip in enumerate(files):
            if long_answer.done() and sent:
                break
            time.sleep(max(0.0, began + interval * (i + 0.5) - time.perf_counter()))
            if long_answer.done() and sent:
                break
            sent.append((clip, pool.submit(transcribe, url, clip.path, data)))
        seconds, text = long_answer.result()
        long_runs.add(durations[long_file.path], seconds, long_file.text, text)
        long_runs.wall += seconds
        for clip, answer in sent:
            clip_seconds, clip_text = answer.result()
            clip_runs.add(durations[clip.path], clip_seconds, clip.text, clip_text)
        clip_runs.wall += time.perf_counter() - began


def in_process(
    runs: Runs,
    side: str,
    model: Path,
    files: list[speech.Clip],
    durations: dict,
    threads: int,
    extra: list[str] = (),
    queued: bool = False,
) -> None:
    """bench.peers in its own process (its peak RSS is its own), the files one after another; `queued`:
    a file's latency counts from the first file's start (all were there at once, a script takes turns)."""
    cmd = [
        sys.executable,
        "-m",
        "bench.peers",
        side,
        str(model),
        *(str(c.path) for c in files),
        "--threads",
        str(threads),
        *extra,
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"peer {side} failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout)
    waited = 0.0
    for clip, result in zip(files, out["files"]):
        runs.add(durations[clip.path], waited + result["seconds"], clip.text, result["text"])
        runs.wall += result["seconds"]
        waited += result["seconds"] if queued else 0.0
    runs.peak_rss = max(runs.peak_rss, out["peak_rss"])


class RssSampler:
    """Peak resident memory of a process and its children, sampled every 0.2 s while in a `with`."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._on = pid, 0, False

    def rss(self) -> int:
        import psutil

        try:
            root = psutil.Process(self.pid)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=False)])
        except psutil.Error:
            return 0

    def __enter__(self) -> RssSampler:
        self.peak, self._on = self.rss(), True
        threading.Thread(target=self._sample, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._on = False

    def _sample(self) -> None:
        while self._on:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.2)
