"""The speaker fields of POST /v1/audio/transcriptions (fields.py): OpenAI's diarized_json with its known
speakers, and the extensions that diarize any response format (diarize, min_speakers, max_speakers).

OpenAI's rules (openai 3.63's TranscriptionCreateParams): known_speaker_names[] and
known_speaker_references[] pair up, up to 4, each reference a data URL of 2-10 s of audio; diarized_json
takes no prompt, timestamp_granularities[] or include[]; inputs over 30 s need a chunking_strategy. A refused
request is refused here or in `reference_voices` / `check_length`, before its upload reaches the model.
"""

from __future__ import annotations

import base64
import binascii
import io
import re

import numpy as np
from pydantic import BaseModel, Field, ValidationInfo, model_validator

from ..audio import SAMPLE_RATE
from ..errors import InvalidAudio, InvalidRequest
from ..intake.ffmpeg import Decoder
from ..intake.upload import spooled_upload
from ..speakers import MAX_KNOWN_SPEAKERS, Hints, reference_embedding
from ..speakers.clustering import MAX_SPEAKERS
from .fields import FormBool

DIARIZE_MODEL = "gpt-4o-transcribe-diarize"
DIARIZE_MODEL_FORMATS = ("json", "text", "diarized_json")  # what OpenAI's diarizing model returns
REFERENCE_SECONDS = (2.0, 10.0)  # a known speaker's clip, as OpenAI requires
UNCHUNKED_SECONDS = 30.0  # diarized_json over this needs chunking_strategy, as OpenAI requires
NAME_MAX_CHARS = 64
SILENT_AMPLITUDE = 1e-4  # a reference quieter than this everywhere (-80 dBFS) holds no voice
DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[^;,]*)*;base64,(?P<data>.*)", re.S)
NAMES, REFERENCES = "known_speaker_names[]", "known_speaker_references[]"


class SpeakerFields(BaseModel):
    """Diarization: OpenAI's known speakers, then the extensions that ask for speakers on any format."""

    known_speaker_names: list[str] = Field(
        [], alias=NAMES, max_length=MAX_KNOWN_SPEAKERS, description="Names of known_speaker_references[]."
    )
    known_speaker_references: list[str] = Field(
        [], alias=REFERENCES, max_length=MAX_KNOWN_SPEAKERS, description="Data URLs of 2-10 s of each voice."
    )
    diarize: FormBool = Field(False, description="Speakers on every format (verbose_json, srt, vtt).")
    min_speakers: int | None = Field(None, ge=1, le=MAX_SPEAKERS, description="At least this many speakers.")
    max_speakers: int | None = Field(None, ge=1, le=MAX_SPEAKERS, description="At most this many speakers.")

    @property
    def diarized(self) -> bool:
        return self.diarize or getattr(self, "response_format", None) == "diarized_json"

    @model_validator(mode="after")
    def _speaker_rules(self, info: ValidationInfo) -> SpeakerFields:
        if self.diarized or getattr(self, "model", None) == DIARIZE_MODEL:
            check_diarized_json(self)
        if not self.diarized:
            known = {NAMES: self.known_speaker_names, REFERENCES: self.known_speaker_references}
            for field, value in {
                **known,
                "min_speakers": self.min_speakers,
                "max_speakers": self.max_speakers,
            }.items():
                if value:
                    raise InvalidRequest(
                        f"{field} needs speakers: send response_format=diarized_json (or diarize=true).",
                        param=field,
                    )
        check_known_speakers(self.known_speaker_names, self.known_speaker_references)
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise InvalidRequest("min_speakers is larger than max_speakers.", param="min_speakers")
        return self

    def hints(self, known: dict[str, np.ndarray]) -> Hints:
        return Hints(self.min_speakers or 1, self.max_speakers, known)


def check_diarized_json(form) -> None:
    """What OpenAI refuses with diarized_json (or its diarizing model): prompts, timestamp granularities,
    logprobs; and formats its diarizing model does not return."""
    if form.model == DIARIZE_MODEL and form.response_format not in DIARIZE_MODEL_FORMATS:
        raise InvalidRequest(
            f"response_format={form.response_format} is not supported with {DIARIZE_MODEL}: use "
            f"{', '.join(DIARIZE_MODEL_FORMATS)}.",
            param="response_format",
            code="unsupported_value",
        )
    if form.response_format != "diarized_json" and form.model != DIARIZE_MODEL:
        return
    for field, sent in (("prompt", form.prompt), ("timestamp_granularities[]", form.timestamp_granularities)):
        if sent:
            raise InvalidRequest(
                f"{field} is not supported with speaker diarization ({DIARIZE_MODEL}, diarized_json).",
                param=field,
                code="unsupported_parameter",
            )
    if getattr(form, "include", None):
        raise InvalidRequest(
            "include[]=logprobs is not supported with speaker diarization.", param="include[]"
        )


def check_known_speakers(names: list[str], references: list[str]) -> None:
    if len(names) != len(references):
        raise InvalidRequest(
            f"known_speaker_names[] has {len(names)} entries and known_speaker_references[] "
            f"{len(references)}: send one name per reference.",
            param=NAMES if len(names) < len(references) else REFERENCES,
        )
    for name in names:
        if not name.strip() or len(name) > NAME_MAX_CHARS:
            raise InvalidRequest(f"A known speaker name must be 1-{NAME_MAX_CHARS} characters.", param=NAMES)
    if len(set(names)) != len(names):
        raise InvalidRequest("known_speaker_names[] holds the same name twice.", param=NAMES)
    for reference in references:
        clip_bytes(reference)  # a malformed data URL is refused before the upload is decoded


def clip_bytes(reference: str) -> bytes:
    """A data URL's bytes; 400 naming known_speaker_references[] when it is not a base64 data URL of
    audio."""
    match = DATA_URL.fullmatch(reference.strip())
    kind = match and (match["type"] or "")
    if not match or not (kind.startswith(("audio/", "video/")) or kind in ("", "application/octet-stream")):
        raise InvalidRequest(
            "Each known speaker reference must be a data URL of audio (data:audio/wav;base64,...).",
            param=REFERENCES,
        )
    try:
        return base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("A known speaker reference is not valid base64.", param=REFERENCES) from None


def reference_voices(form: SpeakerFields, decoder: Decoder) -> dict[str, np.ndarray]:
    """Each known speaker's voice, from its clip decoded by the worker's ffmpeg decoder (its slots, a 20 s
    limit); 400 naming the field when a clip is not audio, silent, or not 2-10 s long."""
    voices, clips = {}, decoder.within(2 * REFERENCE_SECONDS[1])
    for name, reference in zip(form.known_speaker_names, form.known_speaker_references):
        with spooled_upload(io.BytesIO(clip_bytes(reference)), decoder.tmp_dir) as path:
            try:
                audio = clips.decode(path)
            except InvalidRequest:  # not audio, or far too long
                raise InvalidAudio(
                    f"The reference for {name!r} could not be decoded as audio.", param=REFERENCES
                ) from None
        seconds = len(audio) / SAMPLE_RATE
        if not REFERENCE_SECONDS[0] <= seconds <= REFERENCE_SECONDS[1]:
            raise InvalidRequest(
                f"The reference for {name!r} is {seconds:.1f} s long: each must be 2-10 s.", param=REFERENCES
            )
        if not np.any(
            np.abs(audio) > SILENT_AMPLITUDE
        ):  # no voice to embed (all-zero: resemblyzer's gain is inf)
            raise InvalidAudio(f"The reference for {name!r} is silent: it holds no voice.", param=REFERENCES)
        voices[name] = reference_embedding(audio)
    return voices


def check_length(form, audio: np.ndarray) -> None:
    """diarized_json over 30 s needs chunking_strategy, as OpenAI requires (the upload is decoded; nothing
    has been queued)."""
    seconds = len(audio) / SAMPLE_RATE
    chunked = form.chunking_strategy is not None
    if form.response_format == "diarized_json" and not chunked and seconds > UNCHUNKED_SECONDS:
        raise InvalidRequest(
            f"The audio is {seconds:.0f} s long: diarized_json over {UNCHUNKED_SECONDS:g} s needs "
            "chunking_strategy ('auto' or a server_vad object).",
            param="chunking_strategy",
        )
