"""A real-speech corpus made here with espeak-ng and ffmpeg, and word error rate, for tests and `make bench`.

Every file is built from sentences whose text is known, so accuracy is measured, not eyeballed:
    clip(dir, i, voice)        one sentence, one voice
    spaced(dir, ...)           sentences at known onsets in long silence (nothing may be dropped)
    long_file(dir, minutes)    sentences with natural pauses, several voices, for long-form accuracy
    noisy(dir, src, snr_db)    speech with white noise mixed in by ffmpeg
    noise(dir, kind, seconds)  silence, white or brown noise: nobody speaks, no word may come back
WER uses openai-whisper's EnglishTextNormalizer on both sides (case, punctuation, spelling of numbers).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
# espeak-ng voices that tiny.en understands reasonably (checked by hand): male and female, US and UK
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-x-rp", "en-us+m3")
SENTENCES = (
    "The weather forecast calls for rain in the morning and sunshine by the afternoon.",
    "Please send the quarterly report to the finance team before Friday.",
    "She opened the window to let some fresh air into the room.",
    "Our train leaves the station at half past seven tomorrow evening.",
    "The children played football in the park until it got dark.",
    "He poured a cup of coffee and sat down to read the newspaper.",
    "We need to buy milk, bread and eggs on the way home.",
    "The museum is closed on Mondays but open late on Thursdays.",
    "A good night of sleep makes a big difference to your health.",
    "The meeting was moved to the large conference room on the third floor.",
    "My brother is learning to play the piano this year.",
    "The doctor told him to drink more water and walk every day.",
    "They planted tomatoes and beans in the garden last spring.",
    "The bridge across the river was built more than a hundred years ago.",
    "Remember to turn off the lights when you leave the office.",
    "The library has thousands of books about history and science.",
    "It takes about twenty minutes to drive to the airport.",
    "The cat slept on the warm blanket next to the fire.",
    "Her favourite season is autumn because of the colourful leaves.",
    "The new software update fixed several problems with the printer.",
    "We watched the sun set over the mountains from the balcony.",
    "The restaurant on the corner serves excellent fresh fish.",
    "Students must hand in their homework by the end of the week.",
    "The old clock in the hall stopped working many years ago.",
    "He forgot his umbrella and got completely wet in the storm.",
    "The company plans to open two new stores next summer.",
    "A small boat sailed slowly across the quiet lake.",
    "Please check your email for the details of the trip.",
    "The farmer collected fresh eggs from the chickens every morning.",
    "Music can help people relax after a long and busy day.",
)


@dataclass(frozen=True)
class Clip:
    path: Path
    text: str  # what is said
    onsets: tuple[float, ...] = ()  # seconds where each sentence starts (files built with known offsets)


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def ffmpeg(*args: str) -> None:
    run("ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args)


def say(path: Path, text: str, voice: str = "en-us", speed: int = 160) -> Path:
    """espeak-ng speech as 16 kHz mono 16-bit WAV."""
    raw = path.with_suffix(".espeak.wav")
    run("espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text)
    ffmpeg("-i", str(raw), "-ar", str(SAMPLE_RATE), "-ac", "1", str(path))
    raw.unlink()
    return path


def read_wav(path: Path) -> np.ndarray:
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
         "-ar", str(SAMPLE_RATE), "-"], check=True, capture_output=True,
    ).stdout  # fmt: skip
    return np.frombuffer(out, np.int16).astype(np.float32) / 32768.0


def write_wav(path: Path, audio: np.ndarray) -> Path:
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1",
         "-i", "-", str(path)], input=pcm, check=True, capture_output=True,
    )  # fmt: skip
    return path


def clip(directory: Path, index: int, voice: str = "en-us", speed: int = 160) -> Clip:
    text = SENTENCES[index % len(SENTENCES)]
    path = directory / f"clip-{index}-{voice.replace('+', '_')}-{speed}.wav"
    if not path.exists():
        say(path, text, voice, speed)
    return Clip(path, text)


def sequence(
    directory: Path, name: str, parts: list[tuple[float, int, str]], total: float | None = None
) -> Clip:
    """Sentences (onset seconds, sentence index, voice) placed in silence; `total` seconds long."""
    pieces = [(onset, read_wav(clip(directory, i, voice).path)) for onset, i, voice in parts]
    length = max(round(onset * SAMPLE_RATE) + len(a) for onset, a in pieces)
    audio = np.zeros(max(length, round((total or 0) * SAMPLE_RATE)), np.float32)
    for onset, a in pieces:
        start = round(onset * SAMPLE_RATE)
        audio[start : start + len(a)] += a
    text = " ".join(SENTENCES[i % len(SENTENCES)] for _, i, _ in parts)
    return Clip(write_wav(directory / f"{name}.wav", audio), text, tuple(o for o, _, _ in parts))


def spaced(directory: Path) -> Clip:
    """Six sentences several seconds apart in 75 s: the file that used to lose the third and the fifth."""
    onsets = (2.0, 14.5, 21.0, 35.0, 47.5, 63.0)
    parts = [(onset, i, VOICES[i % 2]) for i, onset in enumerate(onsets)]
    return sequence(directory, "spaced", parts, total=75.0)


def long_file(directory: Path, minutes: float = 10.5, seed: int = 0) -> Clip:
    """Sentences in every voice with pauses of 0.3-2.5 s, at least `minutes` long."""
    return story(directory, minutes * 60, f"long-{minutes:g}min", pauses=(0.3, 2.5), seed=seed)


def story(
    directory: Path,
    seconds: float,
    name: str = "",
    pauses=(0.5, 1.5),
    seed: int = 0,
    exact: bool = False,
    first: int = 0,
) -> Clip:
    """Different sentences one after another, voices taking turns, until `seconds` are filled (`exact`: the
    file is exactly that long, the last sentence ending before). Unlike one sentence looped, this is speech
    a model can be judged on: a loop is repetitive text, which Whisper's compression check rightly rejects.
    `first`: the sentence (and voice) to begin with, so that several stories differ."""
    rng = np.random.default_rng(seed)
    parts, t, i = [], 0.5, first
    while True:
        voice = VOICES[i % len(VOICES)]
        length = len(read_wav(clip(directory, i, voice).path)) / SAMPLE_RATE
        if (exact and t + length > seconds) or (not exact and t >= seconds):
            break
        parts.append((t, i, voice))
        t += length + float(rng.uniform(*pauses))
        i += 1
    return sequence(directory, name or f"story-{seconds:g}s", parts, total=seconds if exact else None)


def noisy(directory: Path, source: Clip, snr_db: float = 10.0) -> Clip:
    """The clip with white noise at `snr_db` below its speech level, mixed by ffmpeg."""
    speech = read_wav(source.path)
    level = float(np.sqrt(np.mean(speech[np.abs(speech) > 0.01] ** 2)))
    amplitude = level / (10 ** (snr_db / 20)) * np.sqrt(3)  # uniform white noise: rms = amplitude / sqrt(3)
    path = directory / f"{source.path.stem}-snr{snr_db:g}.wav"
    white = f"anoisesrc=color=white:amplitude={amplitude:.5f}:sample_rate={SAMPLE_RATE}:seed=7"
    mix = "[0][1]amix=inputs=2:duration=first:normalize=0"
    ffmpeg("-i", str(source.path), "-f", "lavfi", "-i", white, "-filter_complex", mix, "-ac", "1", str(path))
    return Clip(path, source.text, source.onsets)


def noise(directory: Path, kind: str, seconds: float = 60.0) -> Clip:
    """'silence', 'white' or 'brown' noise: a file in which nobody speaks."""
    path = directory / f"{kind}-{seconds:g}s.wav"
    source = (
        "anullsrc=r=16000:cl=mono"
        if kind == "silence"
        else (f"anoisesrc=color={kind}:amplitude=0.3:sample_rate={SAMPLE_RATE}:seed=3")
    )
    ffmpeg("-f", "lavfi", "-i", source, "-t", f"{seconds:g}", "-ac", "1", str(path))
    return Clip(path, "")


# -- word error rate -----------------------------------------------------------------------------------------
def words(text: str) -> list[str]:
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()(text).split()


def edit_distance(a: list[str], b: list[str]) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def wer(reference: str | list[str], hypothesis: str | list[str]) -> float:
    """Word error rate of hypothesis against reference (texts, or lists of texts counted together)."""
    refs = [reference] if isinstance(reference, str) else reference
    hyps = [hypothesis] if isinstance(hypothesis, str) else hypothesis
    errors = sum(edit_distance(words(r), words(h)) for r, h in zip(refs, hyps))
    return errors / max(1, sum(len(words(r)) for r in refs))
