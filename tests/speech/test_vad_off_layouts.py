"""Issue 30: VAD off + word timestamps, as a property over generated layouts, on both engines (real tiny.en).

A layout (bench/layouts.py) is 2-4 espeak-ng sentences in five voices with 5-25 s of silence between them,
so sentences end at different points of a window. Each must be transcribed, its first word must start within
0.5 s of its onset, and no word may start in a silence. CI decodes LAYOUTS (a few, each about a minute of
audio); `python -m bench.vad_off` runs 32 and docs/accuracy.md has its figures.

Before the fix a sentence that followed a long silence in the window where the model had stopped was lost
(the model's end of text ended the window), and word alignment put a sentence's first word on the window's
first frame, its last in the silence after it.
"""

from __future__ import annotations

import pytest
import requests

from bench import layouts

# 2, 4, 3 and 4 sentences; before the fix 6 and 16 had a first word at 0.00 s (speech at 0.7 s) and a last
# word 2-4 s after its sentence, 26 lost its sentence at 41 s (15 s into a window, after silence)
LAYOUTS = (3, 6, 16, 26)


@pytest.fixture(scope="module")
def layout_clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("layouts")
    return {seed: (layouts.generate(seed), layouts.build(layouts.generate(seed), d)) for seed in LAYOUTS}


@pytest.mark.parametrize("seed", LAYOUTS)
def test_without_vad_every_sentence_is_transcribed_where_it_is_spoken(real_service, layout_clips, seed):
    layout, clip = layout_clips[seed]
    with open(clip.path, "rb") as f:
        response = requests.post(
            real_service.url + "/asr",
            params={"vad_filter": "false", "word_timestamps": "true", "language": "en", "output": "json"},
            files={"audio_file": f},
            timeout=900,
        )
    assert response.status_code == 200, response.text
    segments = response.json()["segments"]
    assert layouts.faults(layout, segments) == [], (layout, [(s["start"], s["text"]) for s in segments])
