"""The embedded default model: CTranslate2 -> openai-whisper import, English-only models, `make run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import BinaryIO

import pytest
import requests
import torch
import whisper

from tests.conftest import ROOT, launch
from tests.helpers import free_port, wait_for
from tests.speech.conftest import transcribe
from tools import speech
from tools.convert import ConversionError
from tools.import_ct2 import import_ct2


def test_the_import_keeps_every_weight_and_the_official_alignment_heads(tiny_en, tiny_en_ct2):
    checkpoint = torch.load(tiny_en, weights_only=True)
    assert checkpoint["dims"] == {
        "n_mels": 80,
        "n_audio_ctx": 1500,
        "n_audio_state": 384,
        "n_audio_head": 6,
        "n_audio_layer": 4,
        "n_vocab": 51864,
        "n_text_ctx": 448,
        "n_text_state": 384,
        "n_text_head": 6,
        "n_text_layer": 4,
    }  # tiny.en's published dims
    official = whisper.model.Whisper(whisper.model.ModelDimensions(**checkpoint["dims"]))
    official.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    expected = official.alignment_heads.to_dense().nonzero().tolist()
    assert sorted(checkpoint["alignment_heads"]) == sorted(expected)
    model = whisper.load_model(str(tiny_en), device="cpu")  # whisper's own loader takes the file as it is
    assert not model.is_multilingual and model.dims.n_vocab == 51864


def test_the_import_verifies_against_ctranslate2(tiny_en_ct2, tmp_path):
    report = import_ct2(tiny_en_ct2, tmp_path / "tiny.en.pt")
    assert report["relative_logprob_diff"] < 1e-4  # measured 1.3e-6: same weights, both in float32


def test_a_directory_that_is_not_a_whisper_model_is_refused_with_one_line(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\x06\x00\x00\x00not a model")
    with pytest.raises(ConversionError):
        import_ct2(tmp_path, tmp_path / "out.pt")
    result = subprocess.run(
        [sys.executable, "-m", "tools.import_ct2", str(tmp_path), str(tmp_path / "x.pt")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "import_ct2: error:" in result.stderr
    assert not (tmp_path / "x.pt").exists()


def test_english_only_models_detect_english_and_refuse_nothing_english(real_service, corpus):
    clip = corpus.clips[2]  # en-us+f3: one of the voices tiny.en understands best
    with open(clip.path, "rb") as f:
        detected = requests.post(real_service.url + "/detect-language", files={"audio_file": f}, timeout=120)
    assert detected.status_code == 200
    assert detected.json() == {"detected_language": "english", "language_code": "en", "confidence": 1.0}
    body = transcribe(real_service, clip).json()  # no language given: an English-only model speaks English
    assert body["language"] == "english" and speech.wer(clip.text, body["text"]) < 0.5


def start_make_run(tmp_path, port: int) -> tuple[subprocess.Popen, BinaryIO]:
    """`make run` on `port` with no WHISPER_MODEL and no network, in its own session; its output goes to
    tmp_path/run.log (returned open, for the caller to close)."""
    env = {k: v for k, v in os.environ.items() if k not in ("WHISPER_MODEL", "WHISPER_ENGINE", "MAKEFLAGS")}
    env |= {
        "PORT": str(port),
        "METRICS_PORT": str(free_port()),
        "METRICS_HOST": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "HF_HUB_OFFLINE": "1",
    }
    log = open(tmp_path / "run.log", "wb")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, log


def test_make_run_serves_the_embedded_model_offline(corpus, tiny_en, tmp_path):
    """The README's first command, as a newcomer runs it: no WHISPER_MODEL, no network."""
    port = free_port()
    process, log = start_make_run(tmp_path, port)
    try:
        url = f"http://127.0.0.1:{port}"

        def ready():
            assert process.poll() is None, (tmp_path / "run.log").read_text()
            try:
                return requests.get(url + "/readyz", timeout=2).json().get("status") == "ready"
            except requests.RequestException:
                return False

        wait_for(ready, timeout=120, interval=0.5, what="make run ready")
        assert requests.get(url + "/v1/models", timeout=5).json()["data"][0]["id"] == "tiny.en"
        clip = corpus.clips[2]
        with open(clip.path, "rb") as f:
            text = requests.post(url + "/v1/audio/transcriptions", files={"file": f}, timeout=120).json()[
                "text"
            ]
        assert speech.wer(clip.text, text) < 0.3, text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
        log.close()
    assert "serving WHISPER_MODEL=" in (tmp_path / "run.log").read_text()


def test_a_named_model_that_cannot_be_downloaded_says_what_to_do(tmp_path):
    """No network (as here and on CI): /readyz and the log name the fix in one line, instead of a URLError."""
    service = launch("tiny", tmp_path, wait_ready=False, WHISPER_MODEL_DIR=str(tmp_path))

    def failed():
        try:
            body = requests.get(service.url + "/readyz", timeout=2).json()
        except requests.RequestException:
            return None
        return body if "failed" in body["error"]["message"] else None

    try:
        body = wait_for(failed, timeout=90, interval=0.3, what="the load to fail")
        message = body["error"]["message"]
        assert "cannot download the model 'tiny'" in message and "make run" in message, message
        assert "make convert" in message
        lines = [line for line in service.log().splitlines() if "cannot download" in line]
        assert len(lines) == 1, service.log()[-2000:]
    finally:
        service.stop()
