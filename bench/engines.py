"""Both engines on equal work, in-process (no HTTP): speed (x real time) and peak memory per side.

    python -m bench.engines                       # tiny dims, 60 s, 96 tokens per window, 2 threads
    python -m bench.engines --dims test --audio-seconds 30 --force-tokens 32 --repeats 1

One random-weight checkpoint is built, converted for faster-whisper with float32 storage (so that the float32
rows run the very same weights; int8 is quantised at load time), and the converter's own check shows the
logits agree. Every side then decodes the same windows, greedy, exactly `force_tokens` tokens per window
(end-of-text suppressed on both engines), with the same number of CPU threads. Each side runs in its own
Python process, so that its peak RSS is its own and no side inherits another's threads or caches, and the
timed runs alternate between the sides, so that a busy machine slows every side alike.
Random weights: the text is noise; the work (encoder + `force_tokens` decoder steps per window) is real.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Side:
    engine: str  # openai-whisper | faster-whisper
    compute_type: str  # float32 | int8 | float16 | int8_float16
    batch_size: int  # windows per model call: 1 = window after window

    @property
    def label(self) -> str:
        return f"{self.engine} {self.compute_type} batch {self.batch_size}"


DEFAULT_SIDES = (
    Side("openai-whisper", "float32", 1),
    Side("openai-whisper", "float32", 2),
    Side("faster-whisper", "float32", 2),
    Side("faster-whisper", "int8", 1),
    Side("faster-whisper", "int8", 2),
)


@dataclass(frozen=True)
class Config:
    dims: str = "tiny"  # tools.checkpoints shape: "test", "tiny", "large-v3-turbo", ...
    audio_seconds: float = 60.0
    force_tokens: int = 96  # decoder steps per 30 s window, on every side
    threads: int = 2  # CPU threads for torch and CTranslate2 alike
    repeats: int = 3  # timed rounds after one warm-up round, sides interleaved; the median counts
    device: str = "cpu"  # cpu | cuda
    sides: tuple[Side, ...] = DEFAULT_SIDES


@dataclass(frozen=True)
class Row:
    side: Side
    x_realtime: float  # audio seconds per wall-clock second (median run)
    seconds: float  # median wall-clock seconds to decode all the audio
    peak_rss_mb: float  # the side's process, model loaded and decoded
    load_seconds: float
    tokens_per_window: int  # checked equal to force_tokens on every window of every run
    runs: tuple[float, ...] = ()  # seconds of every timed run, to judge the spread


@dataclass(frozen=True)
class Result:
    config: Config
    rows: tuple[Row, ...]
    conversion: dict  # tools.convert's report: how closely the converted logits agree


# -- the parent: model, conversion, one subprocess per side -----------------------------------------------
def run(config: Config = Config(), work_dir: str | Path | None = None) -> Result:
    """Build and convert the model, time every side, return the rows (the caller renders them)."""
    from tools.convert import convert

    with tempfile.TemporaryDirectory(prefix="bench-engines-") as scratch:
        work = Path(work_dir or scratch)
        checkpoint = build_model(work / f"{config.dims}.pt", config.dims)
        report = convert(checkpoint, work / f"{config.dims}-ct2", quantization="float32")
        conversion = {**dataclasses.asdict(report), "destination": str(report.destination)}
        models = {"openai-whisper": checkpoint, "faster-whisper": report.destination}
        rows = measure_interleaved(config, models, work)
    return Result(config, rows, conversion)


def build_model(path: Path, dims: str) -> Path:
    """tools.checkpoints's random checkpoint of the given shape."""
    from tools.checkpoints import build_checkpoint

    return build_checkpoint(path, dims)


def measure_interleaved(config: Config, models: dict[str, Path], work: Path) -> tuple[Row, ...]:
    """Start every side's process, then time them round-robin: round r runs side 1, side 2, ... in turn,
    so that a change in the machine's load hits every side alike. Round 0 warms up and is not counted."""
    workers = [
        SideProcess(side, config, models[side.engine], work / f"side-{i}.log")
        for i, side in enumerate(config.sides)
    ]
    try:
        for worker in workers:
            worker.start()  # one after the other: loading is timed alone
        for _ in range(config.repeats + 1):
            for worker in workers:
                worker.time_one_run()
        return tuple(worker.finish() for worker in workers)
    finally:
        for worker in workers:
            worker.stop()


class SideProcess:
    """One side in its own Python process, driven over stdin/stdout one JSON line at a time."""

    def __init__(self, side: Side, config: Config, model: Path, log_path: Path):
        self.side, self.config, self.model, self.log_path = side, config, model, log_path
        self.process: subprocess.Popen | None = None
        self.times: list[float] = []
        self.load_seconds = 0.0

    def start(self) -> None:
        job = {
            "side": dataclasses.asdict(self.side),
            "config": _config_dict(self.config),
            "model": str(self.model),
        }
        threads = str(self.config.threads)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.engines", "--side-job", json.dumps(job)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self.load_seconds = self._reply()["load_seconds"]

    def time_one_run(self) -> None:
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        self.times.append(self._reply()["seconds"])

    def finish(self) -> Row:
        self.process.stdin.write("done\n")
        self.process.stdin.flush()
        peak = self._reply()["peak_rss_mb"]
        seconds = statistics.median(self.times[1:])  # the first run warmed up
        return Row(
            self.side,
            self.config.audio_seconds / seconds,
            seconds,
            peak,
            self.load_seconds,
            self.config.force_tokens,
            tuple(self.times[1:]),
        )

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(30)
            raise RuntimeError(f"{self.side.label} exited {self.process.returncode}:\n{self._log_tail()}")
        return json.loads(line)

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


def _config_dict(config: Config) -> dict:
    return {k: v for k, v in dataclasses.asdict(config).items() if k != "sides"}


def markdown(result: Result) -> str:
    """The table for docs/benchmarks.md, relative to the first row."""
    c = result.config
    base = result.rows[0].x_realtime
    lines = [
        f"In-process, {c.device}, {c.threads} threads, `{c.dims}` dims (random weights), "
        f"{c.audio_seconds:g} s of audio, greedy, exactly {c.force_tokens} tokens per 30 s window, "
        f"median of {c.repeats}. Converted logits agree with the source to "
        f"{result.conversion['relative_logprob_diff']:.1e} (relative log-probability).",
        "",
        "| engine | compute type | windows per call | x real time | vs first row | peak RSS MB | runs (s) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in result.rows:
        s, runs = row.side, " ".join(f"{t:.2f}" for t in row.runs)
        lines.append(
            f"| {s.engine} | {s.compute_type} | {s.batch_size} | {row.x_realtime:.1f} | "
            f"{row.x_realtime / base:.2f}x | {row.peak_rss_mb:.0f} | {runs} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.engines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dims", default=Config.dims)
    parser.add_argument("--audio-seconds", type=float, default=Config.audio_seconds)
    parser.add_argument("--force-tokens", type=int, default=Config.force_tokens)
    parser.add_argument("--threads", type=int, default=Config.threads)
    parser.add_argument("--repeats", type=int, default=Config.repeats)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=Config.device)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON, not a table")
    parser.add_argument("--side-job", help=argparse.SUPPRESS)  # internal: run one side, print JSON
    args = parser.parse_args(argv)
    if args.side_job:
        job = json.loads(args.side_job)
        from bench.engine_side import serve_side  # the child's side, in its own module

        serve_side(Side(**job["side"]), Config(**job["config"]), job["model"])
        return 0
    sides = DEFAULT_SIDES if args.device == "cpu" else gpu_sides()
    config = Config(
        args.dims, args.audio_seconds, args.force_tokens, args.threads, args.repeats, args.device, sides
    )
    result = run(config)
    print(json.dumps(dataclasses.asdict(result), default=str) if args.json else markdown(result))
    return 0


def gpu_sides() -> tuple[Side, ...]:
    return (
        Side("openai-whisper", "float16", 8),
        Side("faster-whisper", "float16", 8),
        Side("faster-whisper", "int8_float16", 8),
    )


if __name__ == "__main__":
    sys.exit(main())
