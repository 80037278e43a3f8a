"""The child of bench/engines.py: one side's engine in its own process, loaded once, then timed on each
"run" line of stdin (one JSON reply a line); "done" replies the process's peak RSS."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from service.audio import SAMPLE_RATE

if TYPE_CHECKING:
    from bench.engines import Config, Side


def bench_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """A chirp in noise: deterministic, every mel band busy."""
    t = np.arange(int(seconds * SAMPLE_RATE), dtype=np.float64) / SAMPLE_RATE
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * (200 + 20 * (t % 30)) * t) + 0.05 * noise).astype(np.float32)


def serve_side(side: Side, config: Config, model: str, requests=sys.stdin, replies=sys.stdout) -> None:
    """Load the engine, then answer "run" (decode all the audio once, reply its seconds) until "done"
    (reply the peak RSS)."""
    from bench.forced import forcing
    from service.audio import WINDOW_SAMPLES
    from service.engines import DecodeOptions

    def reply(**values) -> None:
        replies.write(json.dumps(values) + "\n")
        replies.flush()

    engine = make_engine(side, config, model)
    started = time.perf_counter()
    engine.load()
    reply(load_seconds=time.perf_counter() - started)
    audio = bench_audio(config.audio_seconds)
    windows = [audio[i : i + WINDOW_SAMPLES] for i in range(0, len(audio), WINDOW_SAMPLES)]
    options = DecodeOptions(language="en")
    with forcing(engine, config.force_tokens):
        for request in requests:
            if request.strip() == "done":
                reply(peak_rss_mb=peak_rss_bytes() / 2**20)
                return
            started = time.perf_counter()
            decode_all(engine, windows, side.batch_size, options)
            reply(seconds=time.perf_counter() - started)


def decode_all(engine, windows: list[np.ndarray], batch_size: int, options) -> None:
    for i in range(0, len(windows), batch_size):
        for result in engine.decode(windows[i : i + batch_size], options):
            if len(result.tokens) != engine.force_tokens:  # unequal work would void the comparison
                raise RuntimeError(f"{engine.name}: {len(result.tokens)} tokens, not {engine.force_tokens}")


def peak_rss_bytes() -> int:
    """This process's peak resident memory. Not ru_maxrss: Linux carries that over from the parent across
    fork + exec, so every side would report the (bigger) parent's peak."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_engine(side: Side, config: Config, model: str):
    from service.settings import Settings

    if side.engine == "openai-whisper":
        import torch

        from service.engines.openai_whisper import OpenAIWhisperEngine

        torch.set_num_threads(config.threads)
        torch.set_num_interop_threads(1)
        return OpenAIWhisperEngine(Settings(whisper_model=model, whisper_device=config.device))
    from service.engines.faster_whisper import FasterWhisperEngine

    settings = Settings(
        whisper_model=model,
        whisper_engine="faster-whisper",
        whisper_device=config.device,
        whisper_compute_type=side.compute_type,
        cpu_threads=config.threads,
    )
    return FasterWhisperEngine(settings)


# -- rendering -----------------------------------------------------------------------------------------------
