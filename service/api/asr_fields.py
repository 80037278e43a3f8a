"""whisper-asr-webservice's fields: POST /asr and POST /detect-language query parameters (fields.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from ..batching.job import FALLBACK_TEMPERATURES, JobOptions
from ..errors import InvalidRequest
from ..speakers import Hints
from ..speakers.clustering import MAX_SPEAKERS
from .fields import (
    ASR_OUTPUTS,
    INITIAL_PROMPT_MAX_CHARS,
    UNTIMED_OUTPUTS,
    FormBool,
    Language,
    check_model_can,
)
from .job_fields import BackgroundFields


# -- the whisper-asr-webservice face -----------------------------------------------------------------------
class AsrQuery(BackgroundFields):
    """POST /asr's query parameters. Unknown parameters are ignored, as whisper-asr-webservice does."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    encode: FormBool = Field(True, description="false: audio_file is raw 16 kHz mono s16le PCM.")
    task: Literal["transcribe", "translate"] = Field("transcribe", description="translate: to English.")
    language: Language = Field(
        None, description="ISO-639-1 code (or name, locale, 639-2 code); auto: detect."
    )
    initial_prompt: str | None = Field(
        None, max_length=INITIAL_PROMPT_MAX_CHARS, description="Conditions the first window."
    )
    vad_filter: FormBool | None = Field(
        None, description="true: decode only speech (voice activity detection)."
    )
    word_timestamps: FormBool = Field(False, description="Word-level timestamps (json output).")
    output: Literal[ASR_OUTPUTS] = Field("txt", description="txt: one line per segment.")
    # whisper-asr-webservice's whisperx engine's speaker parameters (service/speakers does the work)
    diarize: FormBool = Field(False, description="Label speakers ([A] in txt/srt, <v A> in vtt, json).")
    min_speakers: int | None = Field(None, ge=1, le=MAX_SPEAKERS, description="With diarize: at least.")
    max_speakers: int | None = Field(None, ge=1, le=MAX_SPEAKERS, description="With diarize: at most.")

    @model_validator(mode="after")
    def _model_can(self, info: ValidationInfo) -> AsrQuery:
        check_model_can(self.task, self.language, info, task_param="task")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise InvalidRequest("min_speakers is larger than max_speakers.", param="min_speakers")
        return self

    def hints(self) -> Hints | None:
        """What the diarizer is told; None without diarize=true."""
        return Hints(self.min_speakers or 1, self.max_speakers) if self.diarize else None

    def job_options(self) -> JobOptions:
        """What the decoder is asked to do; vad_filter unset (None) is the server's VAD."""
        return JobOptions(
            task=self.task,
            language=self.language,
            temperatures=FALLBACK_TEMPERATURES,
            prompt=self.initial_prompt or None,
            prompt_first_window_only=True,
            word_timestamps=self.word_timestamps,
            vad=self.vad_filter,
            timestamps=self.output not in UNTIMED_OUTPUTS or self.word_timestamps or self.diarize,
        )


class DetectQuery(BaseModel):
    """POST /detect-language's query parameters."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    encode: FormBool = Field(True, description="false: audio_file is raw 16 kHz mono s16le PCM.")
