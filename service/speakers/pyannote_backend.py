"""Who spoke when by pyannote.audio's community-1 pipeline (DIARIZATION_BACKEND=pyannote): for operators who
hold its weights, gated on the Hugging Face Hub and baked into the image at build time (docs/api.md, "The
pyannote backend").

The pipeline is loaded once per worker at start, from PYANNOTE_PIPELINE_DIR with the Hub offline
(HF_HUB_OFFLINE=1) and pyannote's telemetry off (PYANNOTE_METRICS_ENABLED=false: pyannote.audio 4 reports
each run to its makers' server unless told not to), on the worker's GPU when the service runs on one. A
request's decoded 16 kHz samples go in as {"waveform": (1, n) tensor, "sample_rate": 16000} with its
speaker bounds; what comes out (pyannote.audio 4's DiarizeOutput, or 3.x's Annotation) becomes the turns
the rest of service/speakers labels, so every face and format works as with resemblyzer.

Known speakers' references are embedded by resemblyzer when the request is checked, before anything is
queued, and KNOWN_MATCH was measured for that encoder; so each pyannote speaker's voice is resemblyzer's
embedding of its longest turns (voices()), and pyannote's own speaker_embeddings (another encoder, another
scale, with no threshold measured for it) are not used.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import SAMPLE_RATE
from ..settings.parse import SettingsError
from ..settings.speakers import INSTALL
from . import clustering, embeddings, turns
from .turns import Found

if TYPE_CHECKING:
    from . import Hints

VOICE_SECONDS = 60.0  # of a speaker's speech embedded to match known speakers' references
_lock = threading.Lock()  # one run at a time per worker: the pipeline's models and state are shared


def load(directory: str, device: str = "cpu") -> Any:
    """pyannote's pipeline from `directory` (settings checked it holds one), never from the Hub;
    SettingsError (one line) when pyannote.audio does not import."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    try:
        from pyannote.audio import Pipeline
    except ImportError as error:
        message = f"DIARIZATION_BACKEND=pyannote needs pyannote.audio ({error}): {INSTALL}"
        raise SettingsError(message) from None
    pipeline = Pipeline.from_pretrained(directory)
    if pipeline is None:
        raise SettingsError(f"PYANNOTE_PIPELINE_DIR={directory!r}: pyannote.audio found no pipeline there")
    if device != "cpu":
        import torch

        pipeline.to(torch.device(device))
    return pipeline


def device_of(requested: str, index: int = 0) -> str:
    """Where the pipeline runs: the worker's GPU (cuda:N) unless WHISPER_DEVICE=cpu or torch sees none."""
    import torch

    if requested == "cpu" or not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{index % torch.cuda.device_count()}"


def bounds(hints: Hints) -> dict[str, int]:
    """A request's speaker bounds as pyannote's keyword arguments: num_speakers when they meet, else
    min_speakers and max_speakers (at most clustering.MAX_SPEAKERS, as with the default backend)."""
    most = hints.max_speakers or clustering.MAX_SPEAKERS
    if hints.min_speakers == most:
        return {"num_speakers": most}
    return {"min_speakers": hints.min_speakers, "max_speakers": most}


def annotation_of(output: Any) -> Any:
    """pyannote.audio 4's DiarizeOutput: its exclusive diarization (no two speakers at once, made for
    aligning words), else its regular one; pyannote.audio 3.x's output is the Annotation itself."""
    for name in ("exclusive_speaker_diarization", "speaker_diarization"):
        found = getattr(output, name, None)
        if found is not None:
            return found
    return output


def annotation_turns(annotation: Any) -> list[turns.Turn]:
    """An Annotation's tracks as turns in file order: its labels (SPEAKER_00, ...) numbered in the
    Annotation's label order, touching neighbours of one speaker merged."""
    number = {label: i for i, label in enumerate(annotation.labels())}
    tracks = [(s.start, s.end, number[label]) for s, _, label in annotation.itertracks(yield_label=True)]
    tracks = [t for t in tracks if t[1] > t[0]]
    if not tracks:
        return []
    spans = np.array([(start, end) for start, end, _ in tracks], dtype=np.float64)
    return turns.turns(spans, np.array([who for _, _, who in tracks]))


def voices(
    audio: np.ndarray, found: list[turns.Turn], encoder: embeddings.Encoder = embeddings.RESEMBLYZER
) -> dict[int, np.ndarray]:
    """Each speaker's voice as the encoder of known speakers' references hears it (SPEAKER_ENCODER): one
    embedding of its longest turns' samples, up to VOICE_SECONDS of them (a long file's speaker needs no
    more, and its mel windows would fill memory)."""
    out, rate = {}, SAMPLE_RATE
    for speaker in sorted({t.speaker for t in found}):
        own, heard = [], 0.0
        for t in sorted((t for t in found if t.speaker == speaker), key=lambda t: t.start - t.end):
            if heard < VOICE_SECONDS:
                own.append(t)
                heard += t.end - t.start
        samples = np.concatenate([audio[round(t.start * rate) : round(t.end * rate)] for t in own])
        out[speaker] = encoder.embed_clip(samples) if len(samples) else np.zeros(encoder.size, np.float32)
    return out


def find_turns(
    pipeline: Any, audio: np.ndarray, hints: Hints, encoder: embeddings.Encoder = embeddings.RESEMBLYZER
) -> Found:
    """Who spoke when in 16 kHz audio, by the pipeline; each speaker's voice only where known speakers are
    to be named."""
    import torch

    if not len(audio):
        return [], {}
    waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
    with _lock:
        output = pipeline({"waveform": waveform, "sample_rate": SAMPLE_RATE}, **bounds(hints))
    found = annotation_turns(annotation_of(output))
    return found, voices(audio, found, encoder) if hints.known else {}
