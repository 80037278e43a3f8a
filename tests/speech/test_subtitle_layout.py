"""Subtitle layout through the real model on both engines: the words the model heard, laid out by
openai-whisper's writer (tests/api/test_subtitles.py holds the properties over generated transcripts)."""

from __future__ import annotations

import re

import requests

from tests.speech.conftest import transcribe
from tools import speech


def _lines(body: str) -> list[list[str]]:
    """Each cue's text lines (srt: after the number and the timing)."""
    return [block.split("\n")[2:] for block in body.strip().split("\n\n")]


def test_the_layout_holds_on_what_the_model_heard(real_service, tmp_path):
    clip = speech.long_file(tmp_path, minutes=0.4)  # several sentences: several cues of several lines
    words = transcribe(real_service, clip, language="en", **{"timestamp_granularities[]": "word"}).json()[
        "words"
    ]
    heard = [w["word"].strip() for w in words]
    assert len(heard) > 20 and speech.wer(clip.text, " ".join(heard)) < 0.5
    srt = transcribe(
        real_service, clip, language="en", response_format="srt", max_line_width=24, max_line_count=2
    )
    assert srt.status_code == 200, srt.text
    cues = _lines(srt.text)
    assert all(len(lines) <= 2 for lines in cues)
    assert all(len(line) <= 24 or " " not in line for lines in cues for line in lines)
    assert " ".join(" ".join(lines) for lines in cues).split() == heard  # every word, once, in order
    assert sum(len(lines) == 2 for lines in cues) >= len(cues) // 2  # the width really broke lines

    with open(clip.path, "rb") as f:
        vtt = requests.post(
            real_service.url + "/asr",
            params={"output": "vtt", "language": "en", "highlight_words": "true", "max_words_per_line": "3"},
            files={"audio_file": f},
            timeout=900,
        )
    assert vtt.status_code == 200, vtt.text
    underlined = re.findall(r"<u>(.*?)</u>", vtt.text)
    assert underlined == heard  # one cue per word, in order, whatever the face
