"""Fixtures for the engine tests: one random checkpoint, converted once per session, and both engines loaded.

The float32 conversion is what the engine-against-engine tests use: same weights, same arithmetic width, so
both engines must choose the same tokens. The default (float16 storage) conversion is what `make convert`
writes and what create_engine serves with its per-device compute type.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.engines.faster_whisper import FasterWhisperEngine
from service.engines.openai_whisper import OpenAIWhisperEngine
from service.settings import Settings
from tools.checkpoints import build_checkpoint
from tools.convert import Report, convert

SAMPLE_RATE = 16000


@pytest.fixture(scope="session")
def source_checkpoint(tmp_path_factory) -> Path:
    """tools.checkpoints's "test" checkpoint (random weights, every one finite)."""
    return build_checkpoint(tmp_path_factory.mktemp("source") / "test.pt", "test")


@pytest.fixture(scope="session")
def converted(source_checkpoint, tmp_path_factory) -> Report:
    """`make convert`'s output: float16 storage."""
    return convert(source_checkpoint, tmp_path_factory.mktemp("ct2") / "test-ct2")


@pytest.fixture(scope="session")
def converted_float32(source_checkpoint, tmp_path_factory) -> Report:
    return convert(source_checkpoint, tmp_path_factory.mktemp("ct2") / "test-ct2-f32", quantization="float32")


@pytest.fixture(scope="session")
def openai_engine(source_checkpoint) -> OpenAIWhisperEngine:
    engine = OpenAIWhisperEngine(Settings(whisper_model=str(source_checkpoint), whisper_device="cpu"))
    engine.load()
    return engine


@pytest.fixture(scope="session")
def faster_engine(converted_float32) -> FasterWhisperEngine:
    settings = Settings(
        whisper_model=str(converted_float32.destination),
        whisper_engine="faster-whisper",
        whisper_device="cpu",
        whisper_compute_type="float32",
        cpu_threads=2,
    )
    engine = FasterWhisperEngine(settings)
    engine.load()
    return engine


def chirp(seconds: float, seed: int = 0) -> np.ndarray:
    """A rising tone in noise: deterministic audio with energy in every mel band."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * (200 + 40 * t) * t) + 0.05 * noise).astype(np.float32)


@pytest.fixture(scope="session")
def windows() -> list[np.ndarray]:
    """A full window, a partial one and a short one, as the scheduler cuts a file."""
    return [chirp(30, seed=1), chirp(12, seed=2), chirp(4.5, seed=3)]
