"""The in-process peers of the real-speech benchmark: what a user would write instead of running the service.

Each run is its own process, so that its peak memory is its own:
    python -m bench.peers transcribe build/tiny.en.pt a.wav b.wav --threads 2
    python -m bench.peers faster     CT2_DIR a.wav --threads 2 --compute-type int8
    python -m bench.peers batched    CT2_DIR a.wav --threads 2 --compute-type int8 --batch-size 8
    python -m bench.peers batched    CT2 a.wav --device cuda --compute-type float16 --options '{}'
Each library is called with its own defaults, as its README shows (language given, since every file is
English): openai-whisper `transcribe()` (greedy, temperature fallback, conditioned on previous text),
faster-whisper `WhisperModel.transcribe()` (beam 5), and `BatchedInferencePipeline.transcribe()` (its VAD,
batch 8). The model is loaded and warmed up first; each file is timed from its path to the text, ffmpeg
decoding included, as the service's time is. Prints one JSON object: per-file seconds and text, peak RSS.
--options: more keyword arguments of faster-whisper's transcribe() (the GPU benchmark's equal-work caps).
"""

from __future__ import annotations

import argparse
import json
import resource
import time


def openai_transcriber(model_path: str, args):
    import torch
    import whisper

    torch.set_num_threads(args.threads)
    model = whisper.load_model(model_path, device="cpu")

    def run(path: str) -> str:
        return model.transcribe(path, language="en", fp16=False)["text"]

    return run


def faster_transcriber(model_path: str, args):
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(
        model_path, device=args.device, compute_type=args.compute_type, cpu_threads=args.threads
    )
    options = json.loads(args.options)
    if args.side == "batched":
        pipeline = BatchedInferencePipeline(model)

        def run(path: str) -> str:
            segments, _ = pipeline.transcribe(path, language="en", batch_size=args.batch_size, **options)
            return "".join(s.text for s in segments)
    else:

        def run(path: str) -> str:
            segments, _ = model.transcribe(path, language="en", **options)
            return "".join(s.text for s in segments)

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side", choices=("transcribe", "faster", "batched"))
    parser.add_argument("model")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--options", default="{}", help="JSON: more transcribe() keyword arguments")
    args = parser.parse_args(argv)

    run = (openai_transcriber if args.side == "transcribe" else faster_transcriber)(args.model, args)
    run_warmup(run, args.files[0])
    files = []
    for path in args.files:
        began = time.perf_counter()
        text = run(path)
        files.append({"seconds": time.perf_counter() - began, "text": text})
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"files": files, "peak_rss": peak_rss}))


def run_warmup(run, path: str) -> None:
    """One short call first, as the service warms up at start: one-time costs are not the file's."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", path, "-t", "2", tmp.name],
                       check=True)  # fmt: skip
        run(tmp.name)


if __name__ == "__main__":
    main()
