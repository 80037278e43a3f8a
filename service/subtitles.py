"""Subtitle layout for srt and vtt: openai-whisper's own writer lays the cues out from the words' times.

`max_line_width`, `max_line_count`, `max_words_per_line` and `highlight_words` mean what they mean to
`whisper --output_format srt` (the options its get_writer writers take; whisper.utils.SubtitlesWriter):
- a line breaks before a word that would take it past `max_line_width` characters (a longer word stands
  alone);
- with `max_line_count` too, a cue holds at most that many lines, and a pause over 3 s starts a new one;
  otherwise every segment starts a new cue;
- `max_words_per_line`: a new cue after that many words (openai-whisper: "the maximum number of words in a
  segment");
- `highlight_words`: one cue per word, that word underlined (`<u>`), and the cue's plain text in the gaps.

The writer comes from openai-whisper's utils.py, loaded on its own: importing the `whisper` package loads
torch, which a faster-whisper worker never does (tests/engines/test_worker_imports.py). It runs once per
speaker's run of segments, so no cue mixes two voices; formats.py puts the speaker's label in front of
each cue.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .transcript import Segment, Transcript, Word

MIN_LINE_WIDTH = 10  # characters; a narrower line holds hardly a word
MAX_LINE_WIDTH = 1000  # openai-whisper's own value when none is given
MAX_LINE_COUNT = 100
MAX_WORDS_PER_LINE = 1000  # openai-whisper's own value when none is given


@dataclass(frozen=True)
class Layout:
    """The writer's options; all unset: one cue per segment, as without a layout."""

    max_line_width: int | None = None  # characters
    max_line_count: int | None = None  # lines per cue; needs max_line_width
    max_words_per_line: int | None = None  # words per cue
    highlight_words: bool = False  # a cue per word, the word underlined

    @property
    def active(self) -> bool:
        return any(dataclasses.astuple(self))


@cache
def _writer():
    """openai-whisper's SubtitlesWriter, its times kept as seconds to the millisecond (what it compares)."""
    package = importlib.util.find_spec("whisper")  # finds the package without running its __init__
    path = Path(package.submodule_search_locations[0]) / "utils.py"
    spec = importlib.util.spec_from_file_location("service._whisper_utils", path)
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)  # standard library imports only

    class Cues(utils.SubtitlesWriter):
        def format_timestamp(self, seconds: float) -> float:
            return round(seconds, 3)

    return Cues(output_dir="")  # nothing is written to disk: only iterate_result is used


def laid_out(t: Transcript, layout: Layout) -> list[tuple[float, float, str, str | None]]:
    """(start, end, text with its line breaks, speaker) per cue, in order."""
    out = []
    for speaker, segments in _speaker_runs(t.segments):
        result = {"segments": [{"start": s.start, "end": s.end, "words": _words(s)} for s in segments]}
        for start, end, text in _writer().iterate_result(result, dataclasses.asdict(layout)):
            out.append((start, end, _safe(text), speaker))
    return out


def _speaker_runs(segments: tuple[Segment, ...]) -> list[tuple[str | None, list[Segment]]]:
    runs: list[tuple[str | None, list[Segment]]] = []
    for s in segments:
        if runs and runs[-1][0] == s.speaker:
            runs[-1][1].append(s)
        else:
            runs.append((s.speaker, [s]))
    return runs


def _words(s: Segment) -> list[dict]:
    """A segment's words as the writer takes them: one line each, none blank, times never running back.
    A segment without word times gets its words spread over its time by their length."""
    words = s.words
    if not words:
        parts = re.findall(r"\s*\S+", s.text)
        step = (s.end - s.start) / max(1, sum(len(p) for p in parts))
        at, words = s.start, []
        for part in parts:
            words.append(Word(part, at, at + step * len(part), 0.0))
            at += step * len(part)
    out, last = [], 0.0
    for w in words:
        text = re.sub(r"\s*[\r\n]+\s*", " ", w.word)
        if not text.strip():
            continue
        start = max(float(w.start), last)
        last = max(float(w.end), start)
        out.append({"word": text, "start": start, "end": last})
    return out


def _safe(text: str) -> str:
    """No '-->' in a cue (it starts a timing), even where two words join to spell it."""
    return re.sub(r"-{2,}>", "->", text)
