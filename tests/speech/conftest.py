"""Real weights and real speech: OpenAI's tiny.en (the embedded default model) on espeak-ng speech.

The corpus is built once per session with tools.speech (sentences with known text, several voices, white
noise mixed by ffmpeg, a 10.5-minute file, sentences at known onsets in silence, silence and noise). The
reference is openai-whisper's own `transcribe()` on the same weights, in-process, computed once per file.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import Service, launch
from tools import speech

CLIP_SENTENCES = range(0, 30, 3)  # 10 sentences ...
CLIP_VOICES = speech.VOICES[:3]  # ... in 3 voices: 30 clips, 300 words


@dataclass
class Corpus:
    clips: list[speech.Clip]
    noisy: list[speech.Clip]
    long: speech.Clip
    spaced: speech.Clip
    quiet: dict[str, speech.Clip]  # silence, white, brown: 60 s each


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    d = tmp_path_factory.mktemp("speech")
    clips = [speech.clip(d, i, v) for i in CLIP_SENTENCES for v in CLIP_VOICES]
    return Corpus(
        clips=clips,
        noisy=[speech.noisy(d, c, snr_db=10) for c in clips[::3]],
        long=speech.long_file(d, minutes=10.5),
        spaced=speech.spaced(d),
        quiet={kind: speech.noise(d, kind, 60) for kind in ("silence", "white", "brown")},
    )


@pytest.fixture(scope="session")
def three_minutes(tmp_path_factory) -> speech.Clip:
    """A 3-minute story: 6 windows, for streams and for untimed decoding."""
    return speech.story(tmp_path_factory.mktemp("story"), 180, "story-3min", seed=3)


@pytest.fixture(scope="session")
def reference(tiny_en):
    """openai-whisper's transcribe() on the same weights, in-process, memoised per file and settings; seeded,
    so that its fallback sampling gives the same reference on every run."""
    import torch
    import whisper

    model = whisper.load_model(str(tiny_en), device="cpu")
    results: dict[tuple, dict] = {}

    def transcribe(clip: speech.Clip, **options) -> dict:
        key = (clip.path, tuple(sorted(options.items())))
        if key not in results:
            torch.manual_seed(0)
            results[key] = model.transcribe(str(clip.path), language="en", fp16=False, **options)
        return results[key]

    return transcribe


def _serve(model: Path, tmp: Path, engine: str) -> Service:
    # float32 on faster-whisper: the same weights as the reference, computed alike (CPU's default int8 costs
    # about a point of WER here: 22.7% vs 21.5% on the clips, 10.1% vs 9.6% on the long file, measured
    # before the rests of windows were packed)
    return launch(model, tmp, WHISPER_ENGINE=engine, VAD="true", WHISPER_COMPUTE_TYPE="float32")


@pytest.fixture(scope="session", params=["openai-whisper", "faster-whisper"])
def real_service(request, tiny_en, tiny_en_ct2, tmp_path_factory) -> Service:
    """The service with the real model, default settings (VAD on), on each engine."""
    model = tiny_en if request.param == "openai-whisper" else tiny_en_ct2
    server = _serve(model, tmp_path_factory.mktemp(request.param), request.param)
    yield server
    server.stop()
    assert not server.tracebacks(), server.tracebacks()


def transcribe(service: Service, clip: speech.Clip, **fields) -> requests.Response:
    with open(clip.path, "rb") as f:
        return requests.post(
            service.url + "/v1/audio/transcriptions",
            files={"file": (clip.path.name, f)},
            data={"response_format": "verbose_json", **fields},
            timeout=900,
        )


@dataclass
class LongUnderLoad:
    """The 10.5-minute file's verbose_json answer, decoded while clips were sent one after another."""

    response: requests.Response
    seconds: float  # the long file's request, upload to answer
    clip_seconds: list[float]  # each clip's request, sent while the long file decoded
    rests: float  # whisper_redecoded_rests_total over the run: rests of windows decoded again
    inputs: float  # whisper_rest_inputs_total over the run: the model inputs that carried them


@pytest.fixture(scope="session")
def long_under_load(real_service, corpus) -> LongUnderLoad:
    """One decode of the long file per engine serves both its accuracy test and the many-users test: 3 clips
    are sent one after another once its windows are queued, as users would."""
    counted = ("whisper_redecoded_rests_total", "whisper_rest_inputs_total")
    before = [real_service.metric(name) for name in counted]
    result: dict = {}

    def long_request():
        began = time.monotonic()
        result["response"] = transcribe(real_service, corpus.long, language="en")
        result["seconds"] = time.monotonic() - began

    worker = threading.Thread(target=long_request)
    worker.start()
    deadline = time.monotonic() + 120
    while real_service.metric("whisper_queue_depth") < 4 and worker.is_alive():  # its windows are queued
        assert time.monotonic() < deadline, "the long file's windows never reached the queue"
        time.sleep(0.05)
    clip_seconds = []
    for clip in corpus.clips[:3]:
        began = time.monotonic()
        response = transcribe(real_service, clip, language="en", response_format="json")
        assert response.status_code == 200, response.text
        clip_seconds.append(time.monotonic() - began)
    worker.join(timeout=900)
    assert not worker.is_alive(), "the long file's request did not finish in 900 s"
    rests, inputs = (real_service.metric(name) - b for name, b in zip(counted, before))
    return LongUnderLoad(result["response"], result["seconds"], clip_seconds, rests, inputs)
