"""Multi-speaker conversations made with espeak-ng: voices, variants and pitches taking turns, with the
reference of who spoke when, for the diarization tests and bench/diarization.py.

A speaker is an espeak-ng voice (with a variant) at a pitch; an utterance is a sentence of tools.speech (or,
in the hard set, a few words of one), placed after a pause; its reference turn is where its samples are
louder than TRIM_LEVEL, so espeak-ng's own leading and trailing silence is not counted as speech.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools import speech

SAMPLE_RATE = speech.SAMPLE_RATE
TRIM_LEVEL = 0.01  # |sample| above which a file's edges are speech
# distinct speakers: voice+variant, pitch (espeak-ng's -p, 0-99)
SPEAKERS = (
    ("en-us+m1", 40),
    ("en-029+f4", 75),
    ("en-gb-x-rp+m7", 30),
    ("en-us+f3", 55),
    ("en-gb+f2", 65),
)
# the hard set's two voices of one accent: US English, two male variants
SAME_ACCENT = (("en-us+m1", 45), ("en-us+m3", 55))


@dataclass(frozen=True)
class Conversation:
    path: Path
    text: str  # everything said, in order
    turns: tuple[tuple[float, float, str], ...]  # reference (start, end, speaker) in seconds
    speakers: int


def say(directory: Path, text: str, voice: str, pitch: int) -> np.ndarray:
    """espeak-ng's speech of `text` as 16 kHz float32, its edges trimmed to speech."""
    raw = directory / "utterance.espeak.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", "165", "-w", str(raw), text],
        check=True, capture_output=True,
    )  # fmt: skip
    audio = speech.read_wav(raw)
    raw.unlink()
    loud = np.flatnonzero(np.abs(audio) > TRIM_LEVEL)
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio


def phrases(sentence: str, rng: np.random.Generator) -> list[str]:
    """A sentence cut into pieces of 2-4 words: turns shorter than 1.5 s."""
    words, out = sentence.split(), []
    while words:
        take = int(rng.integers(2, 5))
        out.append(" ".join(words[:take]))
        words = words[take:]
    return out


def conversation(
    directory: Path,
    name: str,
    voices: tuple[tuple[str, int], ...],
    utterances: int,
    seed: int = 0,
    short: bool = False,
    pauses: tuple[float, float] = (0.3, 1.2),
) -> Conversation:
    """`utterances` turns by `voices` (never the same voice twice in a row; each speaks at least once)."""
    rng = np.random.default_rng(seed)
    order = [i % len(voices) for i in range(len(voices))]
    while len(order) < utterances:
        order.append(int(rng.choice([v for v in range(len(voices)) if v != order[-1]])))
    lines = [p for i in range(utterances) for p in (phrases(speech.SENTENCES[(seed * 7 + i) % 30], rng))]
    texts = (
        lines[:utterances] if short else [speech.SENTENCES[(seed * 7 + i) % 30] for i in range(utterances)]
    )
    pieces, turns, t = [], [], 0.5
    for who, text in zip(order, texts):
        audio = say(directory, text, *voices[who])
        pieces.append((t, audio))
        turns.append((t, t + len(audio) / SAMPLE_RATE, "ABCDEFGH"[who]))
        t += len(audio) / SAMPLE_RATE + float(rng.uniform(*pauses))
    out = np.zeros(round((t + 0.5) * SAMPLE_RATE), np.float32)
    for start, audio in pieces:
        begin = round(start * SAMPLE_RATE)
        out[begin : begin + len(audio)] += audio
    path = speech.write_wav(directory / f"{name}.wav", out)
    return Conversation(path, " ".join(texts), tuple(turns), len(voices))
