"""From labelled windows to a transcript with speakers: turns, a speaker per word, segments split where the
speaker changes, and the labels users see (A, B, ... in order of first speech, or known speakers' names).

A word takes the speaker whose turns overlap it most, as whisperX's assign_word_speakers does; a word no turn
touches (speech the VAD missed) takes the nearest turn's speaker.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, replace

import numpy as np

from ..intake.vad import VadParams
from ..transcript import Segment, Transcript, Word

TURN_VAD = VadParams(threshold=0.5, min_silence_ms=150, speech_pad_ms=0)  # a 150 ms pause ends a region

KNOWN_MATCH = 0.75  # cosine similarity a group's mean needs to a reference to take its name


@dataclass(frozen=True)
class Turn:
    start: float  # seconds
    end: float
    speaker: int  # the cluster's label


Found = tuple[list[Turn], dict[int, np.ndarray]]  # a diarizer's answer: turns, and each speaker's mean voice


def turns(spans: np.ndarray, labels: np.ndarray) -> list[Turn]:
    """Pieces' spans in file order, merged where neighbours share a label and touch."""
    out: list[Turn] = []
    for (start, end), label in sorted(zip(spans.tolist(), labels.tolist())):
        if out and out[-1].speaker == label and start - out[-1].end < 1e-6:
            out[-1] = Turn(out[-1].start, end, label)
        else:
            out.append(Turn(start, end, label))
    return out


def speaker_at(start: float, end: float, turns: list[Turn]) -> int:
    """The speaker whose turns overlap [start, end] most; the nearest turn's when none does."""
    overlap: dict[int, float] = {}
    for t in turns:
        shared = min(end, t.end) - max(start, t.start)
        if shared > 0:
            overlap[t.speaker] = overlap.get(t.speaker, 0.0) + shared
    if overlap:
        return max(overlap, key=overlap.get)
    middle = (start + end) / 2
    return min(turns, key=lambda t: max(t.start - middle, middle - t.end)).speaker


def estimated_words(segment: Segment) -> tuple[Word, ...]:
    """A segment decoded without word times: its words, each given the share of the segment's time that
    its characters have of the text (as whisper-asr-webservice's whisperx writer splits long sentences)."""
    parts = re.findall(r"\s*\S+", segment.text)
    total = max(1, sum(len(p) for p in parts))
    span, done, out = segment.end - segment.start, 0, []
    for part in parts:
        start = segment.start + span * done / total
        done += len(part)
        out.append(Word(part, start, segment.start + span * done / total, 0.0))
    return tuple(out)


def split(segment: Segment, turns: list[Turn]) -> list[tuple[Segment, int]]:
    """A segment cut where its words' speaker changes; each piece with its speaker. Pieces keep the
    segment's decode fields; its tokens stay with the first piece (a word's tokens are not recorded).
    Without word times (none were asked for), words' times are estimated and the pieces have no words."""
    timed = segment.words is not None
    runs: list[tuple[int, list[Word]]] = []
    for word in segment.words if timed else estimated_words(segment):
        who = speaker_at(word.start, word.end, turns)
        if runs and runs[-1][0] == who:
            runs[-1][1].append(word)
        else:
            runs.append((who, [word]))
    if len(runs) <= 1:
        return [(segment, runs[0][0] if runs else speaker_at(segment.start, segment.end, turns))]
    pieces = []
    for i, (who, words) in enumerate(runs):
        start = segment.start if i == 0 else words[0].start
        end = segment.end if i == len(runs) - 1 else words[-1].end
        text = "".join(w.word for w in words)
        tokens = segment.tokens if i == 0 else ()
        logprobs = (
            segment.logprobs if i == 0 else None
        )  # the segment's tokens' own, once: they go with tokens
        kept = tuple(words) if timed else None
        piece = replace(
            segment, start=start, end=end, text=text, tokens=tokens, words=kept, logprobs=logprobs
        )
        pieces.append((piece, who))
    return pieces


def names(
    order: list[int],
    centroids: dict[int, np.ndarray],
    known: dict[str, np.ndarray],
    groups: list[int] | None = None,
) -> dict[int, str]:
    """Labels for the groups: a known speaker's name where its reference matches the group's voice
    (one-to-one, best total similarity: scipy's linear_sum_assignment, over `groups`, all the audio's
    speakers, when given), letters A, B, ... for the rest in order of first speech (`order`)."""
    from scipy.optimize import linear_sum_assignment

    named: dict[int, str] = {}
    groups = order if groups is None else groups
    if known and groups:
        refs = list(known)
        similarity = np.array([[float(centroids[g] @ known[r]) for r in refs] for g in groups])
        for row, col in zip(*linear_sum_assignment(-similarity)):
            if similarity[row, col] >= KNOWN_MATCH:
                named[groups[row]] = refs[col]
    letters = (c for c in string.ascii_uppercase if c not in named.values())  # a known name may be a letter
    for group in order:
        if group not in named:
            named[group] = next(letters)
    return named


def labelled(
    transcript: Transcript, turns: list[Turn], centroids: dict[int, np.ndarray], known: dict[str, np.ndarray]
) -> Transcript:
    """The transcript with each segment (split at changes) and word carrying its speaker's label."""
    segments = labelled_segments(transcript.segments, turns, centroids, known)
    return replace(transcript, segments=tuple(segments))


def labelled_segments(
    segments, turns: list[Turn], centroids: dict[int, np.ndarray], known: dict[str, np.ndarray]
) -> list[Segment]:
    """Segments split where the speaker changes, each piece and word with its speaker's label (Labeller)."""
    return Labeller(turns, centroids, known)(segments)


class Labeller:
    """Labels for a transcript's segments, given in order, all at once or a window's at a time (a stream):
    known names are matched once against every speaker of the audio (the turns), not only those heard so
    far, and letters go to the others in order of first speech, so the segments given so far are labelled
    as the whole transcript's are."""

    def __init__(self, turns: list[Turn], centroids: dict[int, np.ndarray], known: dict[str, np.ndarray]):
        self.turns = turns
        self.label = names([], centroids, known, list(dict.fromkeys(t.speaker for t in turns)))
        self.letters = (c for c in string.ascii_uppercase if c not in self.label.values())

    def __call__(self, segments) -> list[Segment]:
        """The next segments, split where the speaker changes, each piece and word labelled."""
        if not self.turns:  # nobody was heard speaking: one speaker for whatever was decoded
            return [replace(s, speaker="A") for s in segments]
        out = []
        for piece, who in (p for s in segments for p in split(s, self.turns)):
            if who not in self.label:  # a new voice: the next letter
                self.label[who] = next(self.letters)
            words = piece.words and tuple(replace(w, speaker=self.label[who]) for w in piece.words)
            out.append(replace(piece, speaker=self.label[who], words=words))
        return out
