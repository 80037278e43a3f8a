"""`make bench`: the service against the in-process baseline, side by side in one run -> docs/benchmarks.md.

    python -m bench                                   # CPU, tiny dims (this machine)
    python -m bench --device cuda --dims large-v3-turbo
    python -m bench --quick                           # fewer requests, for a smoke run

Random weights produce arbitrary text, so every side decodes exactly --force-tokens tokens per 30 s window
(end-of-text suppressed until then) with temperature fallback off: equal work on every side. Sides, run in
interleaved rounds so that drift in the machine hits all of them alike:
  (1) in-process `model.transcribe()` on a 30 s clip (what a user would write), in its own process;
  (2) the service over HTTP at concurrency 1, 4 and 16 with the same 30 s clip;
  (3) a 10-minute file through the service, batched (default) vs sequential (condition_on_previous_text).
Then a memory soak: peak RSS of the service after 20 and after 200 short requests.
With --engines, both engines on equal work (the checkpoint converted offline, float32 storage): through the
service at concurrency 1 and 8 (interleaved rounds), and in-process (bench.engines).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from infra.pricing import cost_line, price_here
from tools.checkpoints import build_checkpoint

from .service_bench import Server, drive, nearest_rank

ROOT = Path(__file__).resolve().parents[1]
NO_PRICE = (
    "cost per audio hour: no price here (set PRICE_PER_HOUR=USD/h, or run on a VM of a stack with a price)"
)
NO_FALLBACK = {
    "language": "en",
    "temperature": "0",
    "compression_ratio_threshold": "100",
    "logprob_threshold": "-100",
}


@dataclass
class Side:
    name: str
    audio_seconds: float  # per request
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0  # seconds for all requests of all rounds
    requests: int = 0
    peak_rss: int = 0
    peak_gpu: int = 0

    @property
    def x_realtime(self) -> float:
        return self.requests * self.audio_seconds / self.wall if self.wall else 0.0

    def percentile(self, q: float) -> float:
        return nearest_rank(self.latencies, q)


def make_audio(path: Path, seconds: float) -> Path:
    """Speech from espeak-ng with 1 s pauses, looped to `seconds`."""
    speech = path.with_suffix(".speech.wav")
    text = "The quick brown fox jumps over the lazy dog. Whisper turns speech into text on a GPU."
    subprocess.run(["espeak-ng", "-w", str(speech), text], check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(speech),
                    "-af", "apad=pad_dur=1", "-t", str(seconds), "-ar", "16000", "-ac", "1", str(path)],
                   check=True)  # fmt: skip
    return path


def run_baseline(side: Side, model: Path, clip: Path, args) -> None:
    cmd = [sys.executable, "-m", "bench.baseline", str(model), str(clip), "--repeats", str(args.repeats),
           "--force-tokens", str(args.force_tokens), "--device", args.device]  # fmt: skip
    out = json.loads(subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    side.latencies += out["latencies"]
    side.wall += sum(out["latencies"])
    side.requests += len(out["latencies"])
    side.peak_rss = max(side.peak_rss, out["peak_rss"])
    side.peak_gpu = max(side.peak_gpu, out["peak_gpu"])


def run_http(side: Side, server: Server, clip: Path, concurrency: int, total: int, data: dict) -> None:
    server.peak_rss = server.rss()  # this side's peak, not the one of a side before it
    latencies, wall = drive(server.url, clip, concurrency, total, data)
    side.latencies += latencies
    side.wall += wall
    side.requests += total
    side.peak_rss = max(side.peak_rss, server.peak_rss)
    side.peak_gpu = max(side.peak_gpu, int(server.metric("whisper_gpu_memory_reserved_bytes")))


def soak(server: Server, clip: Path, total: int) -> tuple[int, int]:
    """Peak RSS of the service after 10% and after 100% of `total` short requests."""
    first = max(1, total // 10)
    server.peak_rss = server.rss()  # the soak's own peak, not the long-file sides' before it
    drive(server.url, clip, 4, first, NO_FALLBACK)
    after_first = server.peak_rss
    drive(server.url, clip, 4, total - first, NO_FALLBACK)
    return after_first, server.peak_rss


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dims", default=None, help="checkpoint shape (default: tiny on cpu, turbo on cuda)")
    parser.add_argument("--force-tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over all sides")
    parser.add_argument("--repeats", type=int, default=2, help="baseline calls per round")
    parser.add_argument("--long-seconds", type=float, default=600)
    parser.add_argument("--soak", type=int, default=200, help="requests in the memory soak (0: skip)")
    parser.add_argument("--levels", default="1,4,16", help="HTTP concurrency levels")
    parser.add_argument(
        "--engines", action="store_true", help="also compare openai-whisper and faster-whisper"
    )
    parser.add_argument("--compute-type", default="", help="faster-whisper's (default: int8 on cpu)")
    parser.add_argument("--quick", action="store_true", help="1 round, 120 s long file, 40-request soak")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    if "--quick" in (sys.argv[1:] if argv is None else argv):  # smaller defaults; explicit flags still win
        parser.set_defaults(rounds=1, long_seconds=120, soak=40)
    args = parser.parse_args(argv)
    args.dims = args.dims or ("tiny" if args.device == "cpu" else "large-v3-turbo")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]

    work = Path(tempfile.mkdtemp(prefix="bench-"))
    model = build_checkpoint(work / f"{args.dims}.pt", args.dims)
    clip = make_audio(work / "clip30.wav", 30)
    short = make_audio(work / "clip5.wav", 5)
    long_file = make_audio(work / "long.wav", args.long_seconds)

    baseline = Side("in-process transcribe()", 30)
    http = {c: Side(f"service, concurrency {c}", 30) for c in levels}
    batched = Side(f"{args.long_seconds / 60:g}-min file, batched", args.long_seconds)
    sequential = Side(f"{args.long_seconds / 60:g}-min file, sequential", args.long_seconds)
    began = time.time()
    with Server(model, args.device, args.force_tokens, work) as server:
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr)
            run_baseline(baseline, model, clip, args)
            for c, side in http.items():
                run_http(side, server, clip, c, max(args.repeats, 2 * c), NO_FALLBACK)
            run_http(batched, server, long_file, 1, 1, NO_FALLBACK)
            run_http(
                sequential, server, long_file, 1, 1, {**NO_FALLBACK, "condition_on_previous_text": "true"}
            )
        soak_rss = soak(server, short, args.soak) if args.soak else None
    report = render(args, baseline, http, batched, sequential, soak_rss, time.time() - began)
    if args.engines:
        report += compare_engines(args, model, clip, work)
    Path(args.out).write_text(report)
    print(report)
    full = max(http.values(), key=lambda side: side.x_realtime)  # the busiest concurrency level: full load
    price = price_here()  # PRICE_PER_HOUR, or the stack's price on its VM (infra/pricing.py)
    print(cost_line(price, full.x_realtime, f"cost at full load ({full.name})") if price else NO_PRICE)
    return 0


def compare_engines(args, model: Path, clip: Path, work: Path) -> str:
    """Both engines through the service at concurrency 1 and 8, rounds interleaved; then in-process."""
    from tools.convert import convert

    from . import engines

    ct2 = convert(model, work / "ct2", quantization="float32").destination
    compute = args.compute_type or ("int8" if args.device == "cpu" else "float16")
    configs = {
        "openai-whisper": (model, {}),
        f"faster-whisper {compute}": (
            ct2,
            {"WHISPER_ENGINE": "faster-whisper", "WHISPER_COMPUTE_TYPE": compute},
        ),
    }
    sides = {(name, c): Side(f"{name}, service, concurrency {c}", 30) for name in configs for c in (1, 8)}
    for round_ in range(args.rounds):
        print(f"engines round {round_ + 1}/{args.rounds}", file=sys.stderr)
        for name, (path, env) in configs.items():
            with Server(path, args.device, args.force_tokens, work, **env) as server:
                for c in (1, 8):
                    run_http(sides[name, c], server, clip, c, max(args.repeats, 2 * c), NO_FALLBACK)
    reference, other = sides["openai-whisper", 8], sides[f"faster-whisper {compute}", 8]
    in_process = engines.markdown(
        engines.run(engines.Config(dims=args.dims, device=args.device, force_tokens=args.force_tokens))
    )
    return f"""
## Engines: openai-whisper vs faster-whisper

Same checkpoint (converted offline with `tools.convert`, float32 storage; faster-whisper runs it as
`{compute}`), same 30 s clip, exactly {args.force_tokens} tokens per window, greedy, no fallback.

| side | requests | x realtime | p50 latency s | peak RSS MiB |
|---|---:|---:|---:|---:|
{engine_rows(sides.values())}

- faster-whisper vs openai-whisper through the service at concurrency 8, throughput:
  {ratio(other.x_realtime, reference.x_realtime)} (target on CPU: >= 2x)

{in_process}"""


def engine_rows(sides) -> str:
    mib = 1024 * 1024
    return "\n".join(
        f"| {s.name} | {s.requests} | {s.x_realtime:.2f} | {s.percentile(0.5):.2f} | {s.peak_rss / mib:.0f} |"
        for s in sides
    )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def side_rows(sides) -> str:
    mib = 1024 * 1024
    return "\n".join(
        f"| {s.name} | {s.requests} | {s.x_realtime:.2f} | {s.percentile(0.5):.2f} "
        f"| {s.percentile(0.95):.2f} "
        f"| {s.peak_rss / mib:.0f} | {s.peak_gpu / mib:.0f} |"
        for s in sides
    )


def memory_line(requests: int, soak_rss: tuple[int, int]) -> str:
    mib, early = 1024 * 1024, max(1, requests // 10)
    return (
        f"- Memory: service RSS after {early} requests {soak_rss[0] / mib:.0f} MiB, "
        f"after {requests} {soak_rss[1] / mib:.0f} MiB: {ratio(soak_rss[1], soak_rss[0])} "
        "(target: within 1.10x)\n"
    )


def render(args, baseline, http, batched, sequential, soak_rss, seconds) -> str:
    import os

    import torch
    import whisper

    device = args.device + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else "")
    rows = side_rows([baseline, *http.values(), batched, sequential])
    first, last = http[min(http)], http[max(http)]
    c1_latency = ratio(first.percentile(0.5), baseline.percentile(0.5))
    memory = memory_line(args.soak, soak_rss) if soak_rss else ""
    return f"""# Benchmarks

Written by `make bench` on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} in {seconds / 60:.1f} min.

- Machine: {platform.machine()}, {os.cpu_count()} cores, device `{device}`
- Versions: Python {platform.python_version()}, torch {torch.__version__},
  openai-whisper {whisper.__version__}
- Command: `python -m bench {" ".join(sys.argv[1:])}`
- Model: random weights with `{args.dims}` dimensions; exactly {args.force_tokens} tokens decoded per 30 s
  window on every side (end-of-text suppressed), greedy, temperature fallback off, language `en`.
- Rounds: {args.rounds}, sides interleaved within each round.

| side | requests | x realtime | p50 latency s | p95 latency s | peak RSS MiB | peak GPU MiB |
|---|---:|---:|---:|---:|---:|---:|
{rows}

Ratios (same run):

- Service at concurrency 1 vs in-process, p50 latency: {c1_latency} (target: within 1.05x)
- Concurrency {max(http)} vs 1, throughput: {ratio(last.x_realtime, first.x_realtime)}
  (target: >= 1.5x on CPU, >= 5x on GPU)
- Long file, batched vs sequential, throughput: {ratio(batched.x_realtime, sequential.x_realtime)}
  (target: >= 1.5x on CPU with tiny dims, >= 8x on GPU with large-v3-turbo dims)
{memory}
x realtime = audio seconds per wall second over all requests of a side. The batched side cuts the file at
pauses (24-30 s windows), so it decodes at least as many windows as the sequential side (which steps a full
30 s per window when lengths are forced): the ratio understates batching's advantage. Sequential mode also
conditions each window on the previous text, as openai-whisper's transcribe() does.
"""


if __name__ == "__main__":
    sys.exit(main())
