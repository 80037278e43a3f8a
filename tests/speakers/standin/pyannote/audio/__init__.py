"""The stand-in for pyannote's weights: `pyannote.audio` as service/speakers/pyannote_backend.py uses it, for
the tests of DIARIZATION_BACKEND=pyannote (tests/speakers/test_pyannote.py). CI has neither pyannote.audio
nor community-1's gated weights; this package, first on a server's PYTHONPATH (`pyannote` is a namespace
package, so the real pyannote.core still imports beside it), answers in their place with pyannote.audio
4.0.7's interface:

- `Pipeline.from_pretrained(directory)` reads the directory's config.yaml (JSON is YAML): its `turns` are
  what the pipeline will report, `[start, end, label]` in seconds (a conversation's reference turns);
- calling the pipeline takes `{"waveform": (channel, time) tensor, "sample_rate": int}` and `num_speakers`,
  `min_speakers`, `max_speakers`, checks the waveform as pyannote's Audio.validate_file does, and returns a
  `DiarizeOutput` whose `speaker_diarization` and `exclusive_speaker_diarization` are pyannote.core
  Annotations of those turns (the regular one also holds config.yaml's `overlaps`, heard under the others);
- what it was given is appended to calls.jsonl beside config.yaml: the environment at load (offline, no
  telemetry), the device, each call's waveform shape, dtype, sample rate and bounds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyannote.core import Annotation, Segment

ENVIRONMENT = ("HF_HUB_OFFLINE", "PYANNOTE_METRICS_ENABLED")  # what the service sets before loading


@dataclass
class DiarizeOutput:
    speaker_diarization: Annotation
    exclusive_speaker_diarization: Annotation
    speaker_embeddings: np.ndarray | None = None


def annotation(turns: list) -> Annotation:
    made = Annotation(uri="waveform")
    for start, end, label in turns:
        made[Segment(start, end)] = label
    return made


class Pipeline:
    def __init__(self, directory: Path, config: dict):
        self.directory, self.config = directory, config
        self.record(event="loaded", **{k: os.environ.get(k) for k in ENVIRONMENT})

    @classmethod
    def from_pretrained(cls, checkpoint, revision=None, hparams_file=None, subfolder=None, token=None, **_):
        directory = Path(checkpoint)
        return cls(directory, json.loads((directory / "config.yaml").read_text()))

    def record(self, **entry) -> None:
        with open(self.directory / "calls.jsonl", "a") as log:
            log.write(json.dumps(entry) + "\n")

    def to(self, device):
        self.record(event="to", device=str(device))
        return self

    def __call__(self, file, num_speakers=None, min_speakers=None, max_speakers=None, **kwargs):
        waveform = file["waveform"]
        if len(waveform.shape) != 2 or waveform.shape[0] > waveform.shape[1]:
            raise ValueError("'waveform' must be provided as a (channel, time) torch Tensor.")
        bounds = {"num_speakers": num_speakers, "min_speakers": min_speakers, "max_speakers": max_speakers}
        self.record(
            event="call",
            shape=list(waveform.shape),
            dtype=str(waveform.dtype),
            sample_rate=file["sample_rate"],
            **{k: v for k, v in bounds.items() if v is not None},
        )
        turns = self.config["turns"]
        exclusive = annotation(turns)
        regular = annotation(turns + self.config.get("overlaps", []))
        return DiarizeOutput(regular, exclusive, np.zeros((len(regular.labels()), 256), np.float32))
