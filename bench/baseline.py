"""Side (1): what a user would write in-process: whisper.load_model + model.transcribe(), one clip at a time.

Run as its own process so its peak memory is its own:
    python -m bench.baseline MODEL.pt CLIP.wav --repeats 3 --force-tokens 96 --device cpu
Prints one JSON object: per-call latencies, peak RSS, peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("clip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--force-tokens", type=int, default=96)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    import whisper

    from bench.forced import forced_length

    if args.threads:
        torch.set_num_threads(args.threads)
    model = whisper.load_model(args.model, device=args.device)
    audio = whisper.load_audio(args.clip)
    # forced lengths make timestamps noise: step a full 30 s per window, as the service's sequential mode does
    options = dict(
        language="en",
        temperature=0.0,
        fp16=args.device == "cuda",
        verbose=None,
        condition_on_previous_text=False,
        without_timestamps=True,
    )
    latencies = []
    with forced_length(args.force_tokens):
        model.transcribe(audio[:16000], **options)  # warm-up, as the service does at start
        for _ in range(args.repeats):
            began = time.perf_counter()
            model.transcribe(audio, **options)
            if args.device == "cuda":
                torch.cuda.synchronize()
            latencies.append(time.perf_counter() - began)
    peak_gpu = torch.cuda.max_memory_allocated() if args.device == "cuda" else 0
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"latencies": latencies, "peak_rss": peak_rss, "peak_gpu": peak_gpu}))


if __name__ == "__main__":
    main()
