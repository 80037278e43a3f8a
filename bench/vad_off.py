"""VAD off + word timestamps on generated layouts (issue #30): how many keep the rule, per side.

    python -m bench.vad_off                 # 32 layouts (seeds 0-31), both engines and transcribe()
    python -m bench.vad_off --layouts 8     # fewer, for a smoke run
    python -m bench.vad_off --json out.json # also write every layout's faults

Real weights (the embedded tiny.en, tools/embedded.py) and espeak-ng sentences in silence (bench/layouts.py:
2-4 sentences, 5-25 s gaps, five voices). Sides: the service under gunicorn on each engine (float32, as the
speech tests run it), asked `/asr?vad_filter=false&word_timestamps=true&language=en&output=json`; and
openai-whisper's own `transcribe(word_timestamps=True)` on the same weights, in-process, as the reference.
The rule (bench/layouts.faults): each sentence transcribed, its first word within 0.5 s of its onset, no word
starting in a silence. Figures go to docs/accuracy.md by hand, with the commit they were measured at.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import requests

from tools import embedded

from . import layouts
from .service_bench import Server

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("openai-whisper", "faster-whisper")
REFERENCE = "transcribe()"
PARAMS = {"vad_filter": "false", "word_timestamps": "true", "language": "en", "output": "json"}


def service_faults(url: str, clip: Path, layout: layouts.Layout) -> list[str]:
    with open(clip, "rb") as f:
        resp = requests.post(url + "/asr", params=PARAMS, files={"audio_file": f}, timeout=900)
    if resp.status_code != 200:
        return [f"HTTP {resp.status_code}: {resp.text[:200]}"]
    return layouts.faults(layout, resp.json()["segments"])


def run_engine(engine: str, clips: dict, work: Path) -> dict[int, list[str]]:
    model = (
        embedded.checkpoint(ROOT / embedded.CHECKPOINT) if engine == ENGINES[0] else embedded.ct2_directory()
    )
    env = {"WHISPER_ENGINE": engine, "WHISPER_COMPUTE_TYPE": "float32", "VAD": "true", "WARMUP": "false"}
    with Server(model, "cpu", 0, work, **env) as server:
        return {seed: service_faults(server.url, clip, layout) for seed, (layout, clip) in clips.items()}


def run_reference(clips: dict) -> dict[int, list[str]]:
    import torch
    import whisper

    model = whisper.load_model(str(embedded.checkpoint(ROOT / embedded.CHECKPOINT)), device="cpu")
    out = {}
    for seed, (layout, clip) in clips.items():
        torch.manual_seed(0)
        result = model.transcribe(str(clip), language="en", fp16=False, word_timestamps=True)
        out[seed] = layouts.faults(layout, result["segments"])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", type=int, default=32)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--sides", nargs="+", default=[*ENGINES, REFERENCE])
    parser.add_argument("--json", type=Path, help="write every layout's faults here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seeds = range(args.first_seed, args.first_seed + args.layouts)
        clips = {
            s: (layout, layouts.build(layout, work).path) for s in seeds for layout in [layouts.generate(s)]
        }
        results = {}
        for side in args.sides:
            results[side] = run_reference(clips) if side == REFERENCE else run_engine(side, clips, work)
            report(side, results[side])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def report(side: str, faults: dict[int, list[str]]) -> None:
    passed = sum(not f for f in faults.values())
    print(f"{side}: {passed}/{len(faults)} layouts keep the rule", flush=True)
    for seed, found in faults.items():
        for fault in found:
            print(f"  layout {seed}: {fault}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
