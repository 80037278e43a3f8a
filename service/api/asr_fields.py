"""whisper-asr-webservice's fields: POST /asr and POST /detect-language query parameters (fields.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from ..batching.job import FALLBACK_TEMPERATURES, JobOptions
from .fields import (
    ASR_OUTPUTS,
    INITIAL_PROMPT_MAX_CHARS,
    UNTIMED_OUTPUTS,
    FormBool,
    Language,
    check_model_can,
)


# -- the whisper-asr-webservice face -----------------------------------------------------------------------
class AsrQuery(BaseModel):
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

    @model_validator(mode="after")
    def _model_can(self, info: ValidationInfo) -> AsrQuery:
        check_model_can(self.task, self.language, info, task_param="task")
        return self

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
            timestamps=self.output not in UNTIMED_OUTPUTS or self.word_timestamps,
        )


class DetectQuery(BaseModel):
    """POST /detect-language's query parameters."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    encode: FormBool = Field(True, description="false: audio_file is raw 16 kHz mono s16le PCM.")
