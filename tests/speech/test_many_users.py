"""Many users at once, on real speech: a stream that streams, and clips served while a long file decodes.

These guard against regressions with generous bounds; the figures are measured by `make bench-speech`
(docs/benchmarks-speech.md). Each bound compares two times measured in the same run on the same machine,
so a busy CI machine slows both sides alike.
"""

from __future__ import annotations

import json
import time

import requests

from tools import speech


def streamed(service, clip: speech.Clip) -> tuple[float, float, str]:
    """Seconds to the first text event and to the done event of one stream=true request; the text."""
    began, first = time.monotonic(), None
    with open(clip.path, "rb") as f:
        response = requests.post(
            service.url + "/v1/audio/transcriptions",
            files={"file": (clip.path.name, f)},
            data={"stream": "true", "language": "en"},
            stream=True,
            timeout=600,
        )
        assert response.status_code == 200, response.text
        for line in response.iter_lines():
            if not line.startswith(b"data: "):
                continue
            event = json.loads(line[6:])
            if event["type"] == "transcript.text.delta" and first is None and event["delta"].strip():
                first = time.monotonic() - began
            if event["type"] == "transcript.text.done":
                return first, time.monotonic() - began, event["text"]
    raise AssertionError("the stream ended without transcript.text.done")


def test_a_stream_sends_its_first_text_long_before_its_last(real_service, three_minutes):
    """The stream's first window is decoded alone, then its windows in growing batches (work.take_batch):
    before, the whole file went to the model as one batch and the first event came at 95% of the stream."""
    first, total, text = streamed(real_service, three_minutes)
    print(f"3-min stream: first text at {first:.2f} s of {total:.2f} s ({first / total:.0%})")
    assert first is not None and first <= 0.5 * total
    assert speech.wer(three_minutes.text, text) < 0.3


def test_clips_are_served_while_a_long_file_decodes(long_under_load):
    """Shortest job first: a clip sent while a 10.5-minute file decodes is answered in a small part of the
    long file's time, not after it (before, a clip with other options waited for every window of it; on a
    CPU, a clip decoded with 7 of its windows took 0.62 of it). The clips ask json, the file verbose_json:
    other decoding options on faster-whisper (untimed, beam 5), the same on openai-whisper."""
    latencies, seconds = long_under_load.clip_seconds, long_under_load.seconds
    assert long_under_load.response.status_code == 200
    print(f"clips during a 10.5-min file: {[round(x, 2) for x in latencies]} s; the file: {seconds:.1f} s")
    assert max(latencies) <= 0.6 * seconds
