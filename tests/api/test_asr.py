"""The whisper-asr-webservice face (/asr, /detect-language) through the real server."""

from __future__ import annotations

import re

import pytest
import requests

SRT = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n([^\n]+)\n")


def asr(service, path, **query):
    with open(path, "rb") as f:
        resp = requests.post(service.url + "/asr", params=query, files={"audio_file": f}, timeout=120)
    assert resp.status_code == 200, resp.text
    return resp


def seconds(h, m, s, ms) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def test_srt_is_valid_subrip(service, audio_dir):
    body = asr(service, audio_dir / "long.wav", output="srt", language="en").text
    cues = SRT.findall(body)
    assert cues and len(cues) == body.count(" --> ")
    assert [int(c[0]) for c in cues] == list(range(1, len(cues) + 1))
    previous_end = 0.0
    for cue in cues:
        start, end = seconds(*cue[1:5]), seconds(*cue[5:9])
        assert previous_end <= start <= end <= 75.05
        previous_end = end
    assert previous_end > 45  # later windows keep their absolute times


@pytest.mark.parametrize(
    ("output", "mimetype", "check"),
    [
        ("txt", "text/plain", lambda b: b.strip() and "-->" not in b),
        ("vtt", "text/vtt", lambda b: b.startswith("WEBVTT\n\n") and " --> " in b),
        ("tsv", "text/tab-separated-values", lambda b: b.startswith("start\tend\ttext\n")),
        (
            "json",
            "application/json",
            lambda b: {"text", "segments", "language"} <= set(__import__("json").loads(b)),
        ),
    ],
)
def test_each_output(service, audio_dir, output, mimetype, check):
    resp = asr(service, audio_dir / "speech.mp3", output=output, task="transcribe")
    assert resp.headers["Content-Type"].startswith(mimetype)
    assert resp.headers["Asr-Engine"] == "openai_whisper"  # whisper-asr-webservice's engine names
    assert f".{output}" in resp.headers["Content-Disposition"]
    assert check(resp.text)


def test_raw_pcm_with_encode_false(service, audio_dir):
    pcm = (audio_dir / "speech.wav").read_bytes()[44:]  # the 16-bit mono samples after the RIFF header
    resp = requests.post(
        service.url + "/asr",
        params={"encode": "false", "output": "json", "language": "en"},
        files={"audio_file": ("clip.raw", pcm)},
        timeout=120,
    )
    assert resp.status_code == 200 and resp.json()["language"] == "en"


def test_detect_language_agrees_with_transcription(service, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        detected = requests.post(service.url + "/detect-language", files={"audio_file": f}, timeout=60).json()
    assert set(detected) == {"detected_language", "language_code", "confidence"}
    assert 0 < detected["confidence"] <= 1
    with open(audio_dir / "speech.wav", "rb") as f:
        body = requests.post(
            service.url + "/v1/audio/transcriptions",
            files={"file": f},
            data={"response_format": "verbose_json"},
            timeout=60,
        ).json()
    assert body["language"] == detected["detected_language"]  # same first window, same argmax


def test_bad_query_values(service, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        resp = requests.post(service.url + "/asr", params={"output": "docx"}, files={"audio_file": f})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "output"
    resp = requests.post(
        service.url + "/asr", params={"task": "summarise"}, files={"audio_file": ("a", b"x")}
    )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "task"
