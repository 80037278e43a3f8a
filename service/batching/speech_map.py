"""Word times held to the speech map: no word starts where the speech detector heard nobody (issue #30).

Whisper's word alignment (DTW over cross-attention, both engines) starts an input's first word at the input's
first frame, and stretches a sentence's last word, or its segment's end timestamp, into the silence after it:
on tiny.en with a sentence 0.7 s into a file, ' The' at 0.00 s; ' science.' 2.5 s after the sentence ended.
openai-whisper's transcribe() places them alike (bench/vad_off.py measures both). The job knows where the
speech is (VAD's regions, also found without VAD: intake/windows.SPEECH_MAP), so each word is held to it:
    a word that overlaps speech keeps only the part that does (its start moves to where the speech starts);
    a word entirely in silence moves to the nearest edge of speech, keeping the words in order.
A segment without word times is held the same way (its start at 24.79 s in silence, its sentence at 44.31 s,
became 44.1 s). Regions are widened by WORD_PAD_SECONDS: Silero's 32 ms frames and a word's soft onset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..audio import SAMPLE_RATE
from ..intake.vad import Region
from ..transcript import Segment

WORD_PAD_SECONDS = 0.2


def held_to_speech(segment: Segment, speech: Sequence[Region]) -> Segment:
    """The segment (file times) with each word held to the speech regions, and its times to its words'
    (without word times, the segment's own times are held, as one word's would be)."""
    if not speech:
        return segment
    spans = [
        (r.start / SAMPLE_RATE - WORD_PAD_SECONDS, r.end / SAMPLE_RATE + WORD_PAD_SECONDS) for r in speech
    ]
    if not segment.words:
        start, end = _held(segment.start, segment.end, spans)
        return replace(segment, start=start, end=max(start, end))
    words, earliest = [], 0.0
    for word in segment.words:
        start, end = _held(word.start, word.end, spans)
        start = max(start, earliest)
        words.append(replace(word, start=start, end=max(start, end)))
        earliest = start
    return replace(segment, start=words[0].start, end=max(words[-1].end, words[0].start), words=tuple(words))


def _held(start: float, end: float, spans: list[tuple[float, float]]) -> tuple[float, float]:
    overlapping = [(a, b) for a, b in spans if a < max(end, start + 1e-6) and b > start]
    if overlapping:
        return max(start, overlapping[0][0]), min(end, overlapping[-1][1])
    edge = min((e for span in spans for e in span), key=lambda e: abs(e - start))
    return edge, edge
