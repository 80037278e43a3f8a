"""whisper-asr-webservice details through the real server: download name, engine header, charset, language
values, initial_prompt's length."""

from __future__ import annotations

import pytest
import requests


def asr(service, audio: bytes, filename: str, **query) -> requests.Response:
    files = {"audio_file": (filename, audio)}
    return requests.post(service.url + "/asr", params=query, files=files, timeout=120)


@pytest.mark.parametrize("output", ["txt", "srt", "vtt", "tsv", "json"])
def test_download_name_engine_and_charset(service, audio_dir, output):
    resp = asr(
        service, (audio_dir / "speech.mp3").read_bytes(), "Episode 1.mkv", output=output, language="en"
    )
    assert resp.status_code == 200, resp.text
    disposition = resp.headers["Content-Disposition"]
    assert f'filename="Episode_1.mkv.{output}"' in disposition  # the upload's full name, then the output
    assert f"filename*=UTF-8''Episode%201.mkv.{output}" in disposition
    assert resp.headers["Asr-Engine"] == "openai_whisper"
    assert resp.headers["Content-Type"].count("charset") <= 1


@pytest.mark.parametrize("language", ["en-US", "eng", "English", "auto"])
def test_language_values_users_send(service, audio_dir, language):
    resp = asr(service, (audio_dir / "speech.wav").read_bytes(), "a.wav", output="json", language=language)
    assert resp.status_code == 200, resp.text
    if language != "auto":
        assert resp.json()["language"] == "en"


def test_initial_prompt_length_is_enforced(service):
    resp = requests.post(service.url + "/asr", params={"initial_prompt": "x" * 501}, timeout=30)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "initial_prompt"
