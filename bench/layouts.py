"""Sentences in silence at generated places, and the rule a VAD-off transcript of them must keep (issue #30).

A layout is 2-4 espeak-ng sentences (tools/speech.py) in several voices with 5-25 s of silence between
them, so that sentences end at every point of a 30 s window: near its start, its middle, its end, on a cut.
The rule, per sentence: it is transcribed (word error rate below MAX_WER), its first word starts within
ONSET_SLACK_SECONDS of its onset, and no word of the transcript starts in a silence.

Used by tests/speech/test_vad_off_layouts.py (a handful, in CI) and bench/vad_off.py (many, measured).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools import speech

ONSET_SLACK_SECONDS = 0.5  # a sentence's first word starts this close to where it is spoken
SPAN_SLACK_SECONDS = 0.5  # a word may start this far outside a sentence: a soft onset, a trailing breath
MAX_WER = 0.75  # transcribed, not lost: tiny.en gets up to 2/3 of an espeak-ng sentence wrong
GAPS = (5.0, 25.0)  # seconds of silence between sentences


@dataclass(frozen=True)
class Layout:
    seed: int
    parts: tuple[tuple[float, int, str], ...]  # (onset seconds, sentence index, voice)

    @property
    def name(self) -> str:
        return f"layout-{self.seed}"


def generate(seed: int) -> Layout:
    """2-4 sentences, each after 5-25 s of silence, the first within 3 s of the start; several voices."""
    rng = random.Random(seed)
    count = rng.randint(2, 4)
    sentences = rng.sample(range(len(speech.SENTENCES)), count)
    onset, parts = round(rng.uniform(0.0, 3.0), 2), []
    for index in sentences:
        voice = rng.choice(speech.VOICES)
        parts.append((onset, index, voice))
        onset += length(index, voice) + round(rng.uniform(*GAPS), 2)
    return Layout(seed, tuple(parts))


_clips: dict[tuple[int, str], tuple[float, float, float]] = {}
CACHE = Path(__file__).resolve().parents[1] / "build" / "layouts"  # espeak-ng clips, made once
AUDIBLE = (
    0.01  # a sample louder than this is speech (espeak-ng pads a clip with ~0.35 s of silence at its end)
)


def _clip(index: int, voice: str) -> tuple[float, float, float]:
    """(length, first audible second, last audible second) of a sentence as espeak-ng speaks it."""
    if (index, voice) not in _clips:
        CACHE.mkdir(parents=True, exist_ok=True)
        audio = speech.read_wav(speech.clip(CACHE, index, voice).path)
        loud = np.flatnonzero(np.abs(audio) > AUDIBLE)
        rate = speech.SAMPLE_RATE
        _clips[index, voice] = (len(audio) / rate, float(loud[0] / rate), float(loud[-1] / rate))
    return _clips[index, voice]


def length(index: int, voice: str) -> float:
    """Seconds of a sentence's clip, its trailing silence included."""
    return _clip(index, voice)[0]


def build(layout: Layout, directory: Path) -> speech.Clip:
    return speech.sequence(directory, layout.name, list(layout.parts))


def spans(layout: Layout) -> list[tuple[float, float]]:
    """Where each sentence is audible, in file seconds: from its first word's onset to its last sound."""
    return [(onset + _clip(i, voice)[1], onset + _clip(i, voice)[2]) for onset, i, voice in layout.parts]


def faults(layout: Layout, segments: list[dict]) -> list[str]:
    """What a transcript (`segments` with `words`, as the json output has them) breaks of the rule."""
    words = [w for s in segments for w in s["words"]]
    found = []
    for (start, end), (_, index, _) in zip(spans(layout), layout.parts):
        mine = [w for w in words if start - SPAN_SLACK_SECONDS <= w["start"] <= end + SPAN_SLACK_SECONDS]
        said = " ".join(w["word"] for w in mine)
        if speech.wer(speech.SENTENCES[index], said) >= MAX_WER:
            found.append(f"sentence at {start:.2f} s not transcribed: {said!r}")
        elif abs(mine[0]["start"] - start) > ONSET_SLACK_SECONDS:
            found.append(f"sentence at {start:.2f} s: first word {mine[0]['word']!r} at {mine[0]['start']} s")
    for w in words:
        if not any(a - SPAN_SLACK_SECONDS <= w["start"] <= b + SPAN_SLACK_SECONDS for a, b in spans(layout)):
            found.append(f"{w['word']!r} starts in silence at {w['start']} s")
    return found
