"""A transcription session's configuration, and `session.update` in both of OpenAI's shapes.

The GA shape (openai 3.63's RealtimeTranscriptionSessionCreateRequest) nests everything under `audio.input`:
`{"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
"transcription": {...}, "turn_detection": {...} | null}}, "include": [...]}`. The beta shape (still sent by
older clients, and accepted by speaches) is flat: `input_audio_format: "pcm16"`, `input_audio_transcription`,
`turn_detection`. Fields a session does not act on (noise_reduction, create_response, ...) are ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ...languages import language_code
from ..fields import PROMPT_MAX_CHARS
from .audio import BETA_NAMES, FORMATS

LOGPROBS = "item.input_audio_transcription.logprobs"


class Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ServerVad(Loose):
    """OpenAI's server_vad, with its defaults; detection runs the service's Silero VAD."""

    type: Literal["server_vad"] = "server_vad"
    threshold: float = Field(0.5, gt=0, lt=1)
    prefix_padding_ms: int = Field(300, ge=0, le=5000)
    silence_duration_ms: int = Field(500, ge=100, le=10000)


class Transcription(Loose):
    model: str | None = None
    language: Annotated[str | None, AfterValidator(language_code)] = None  # 'en', 'German', 'de-DE'
    prompt: str | None = Field(None, max_length=PROMPT_MAX_CHARS)  # the HTTP faces' bound


class Format(Loose):
    type: Literal["audio/pcm", "audio/pcmu", "audio/pcma"] = "audio/pcm"
    rate: Literal[24000] | None = None


class AudioInput(Loose):
    format: Format | None = None
    transcription: Transcription | None = None
    turn_detection: ServerVad | None = None


class Audio(Loose):
    input: AudioInput | None = None


class GaSession(Loose):
    type: Literal["transcription"] = "transcription"
    audio: Audio | None = None
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None


class BetaSession(Loose):
    input_audio_format: Literal["pcm16", "g711_ulaw", "g711_alaw"] | None = None
    input_audio_transcription: Transcription | None = None
    turn_detection: ServerVad | None = None
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None


class SessionConfig(BaseModel):
    """What the session acts on, in the beta's names (`format` is a key of audio.FORMATS)."""

    model_config = ConfigDict(frozen=True)

    format: str = "pcm16"
    transcription: Transcription = Transcription()
    turn_detection: ServerVad | None = ServerVad()
    logprobs: bool = False

    def updated(self, session: dict) -> SessionConfig:
        """This config with a session.update's `session` applied; pydantic's ValidationError when invalid.
        A key the update leaves out keeps its value; `turn_detection: null` turns server VAD off."""
        beta = any(k in session for k in ("input_audio_format", "input_audio_transcription"))
        if beta or ("turn_detection" in session and "audio" not in session):
            return self._from_beta(BetaSession.model_validate(session), session)
        return self._from_ga(GaSession.model_validate(session), session)

    def _from_ga(self, ga: GaSession, raw: dict) -> SessionConfig:
        changes: dict = {}
        given = (raw.get("audio") or {}).get("input") or {}
        audio_input = ga.audio.input if ga.audio and ga.audio.input else AudioInput()
        if audio_input.format is not None:
            changes["format"] = BETA_NAMES[audio_input.format.type]
        if audio_input.transcription is not None:
            changes["transcription"] = audio_input.transcription
        if "turn_detection" in given:
            changes["turn_detection"] = audio_input.turn_detection
        if ga.include is not None:
            changes["logprobs"] = LOGPROBS in ga.include
        return self.model_copy(update=changes)

    def _from_beta(self, beta: BetaSession, raw: dict) -> SessionConfig:
        changes: dict = {}
        if beta.input_audio_format is not None:
            changes["format"] = beta.input_audio_format
        if beta.input_audio_transcription is not None:
            changes["transcription"] = beta.input_audio_transcription
        if "turn_detection" in raw:
            changes["turn_detection"] = beta.turn_detection
        if beta.include is not None:
            changes["logprobs"] = LOGPROBS in beta.include
        return self.model_copy(update=changes)

    def ga(self, session_id: str) -> dict:
        """The session as session.created/updated show it (the GA shape)."""
        fmt, rate = FORMATS[self.format]
        turn = self.turn_detection.model_dump() if self.turn_detection else None
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": session_id,
            "audio": {
                "input": {
                    "format": {"type": fmt, "rate": rate} if fmt == "audio/pcm" else {"type": fmt},
                    "transcription": self.transcription.model_dump(),
                    "turn_detection": turn,
                    "noise_reduction": None,
                }
            },
            "include": [LOGPROBS] if self.logprobs else [],
        }
