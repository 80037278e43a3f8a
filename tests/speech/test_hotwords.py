"""hotwords through the real model on both engines: faster-whisper's own parameter, and on openai-whisper the
same text put before the prompt (docs/api.md). A name tiny.en has never heard comes back spelled as given."""

from __future__ import annotations

import re

import requests

from tests.speech.conftest import transcribe
from tools import speech

SENTENCE = "Call Fendrith if the alarm goes off tonight."


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def test_hotwords_spell_a_name_the_model_never_heard(real_service, tmp_path):
    clip = speech.Clip(speech.say(tmp_path / "name.wav", SENTENCE), SENTENCE)
    plain = transcribe(real_service, clip, language="en").json()["text"]
    assert "fendrith" not in _words(plain)  # tiny.en alone cannot spell it
    helped = transcribe(real_service, clip, language="en", hotwords="Fendrith").json()["text"]
    assert "fendrith" in _words(helped), helped
    assert speech.wer(SENTENCE, helped) < speech.wer(SENTENCE, plain)
    with open(clip.path, "rb") as f:  # /asr takes them too, in every window
        asr = requests.post(
            real_service.url + "/asr",
            params={"language": "en", "hotwords": "Fendrith", "initial_prompt": "A memo."},
            files={"audio_file": f},
            timeout=300,
        )
    assert asr.status_code == 200 and "fendrith" in _words(asr.text), asr.text


def test_hotwords_are_bounded_and_named_when_refused(real_service, tmp_path):
    clip = speech.Clip(speech.say(tmp_path / "name.wav", SENTENCE), SENTENCE)
    refused = transcribe(real_service, clip, hotwords="x" * 501)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "hotwords"
