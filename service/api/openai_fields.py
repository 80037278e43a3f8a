"""OpenAI's audio API fields: POST /v1/audio/transcriptions and /v1/audio/translations (fields.py)."""

from __future__ import annotations

import json
import typing
from dataclasses import replace
from typing import Annotated, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..batching.job import FALLBACK_TEMPERATURES, JobOptions
from ..engines.base import Thresholds
from ..errors import InvalidRequest
from ..intake.vad import VadParams
from ..settings import DEFAULTS
from ..settings.choices import MAX_BEAM_SIZE
from .fields import (
    KEYWORDS_MAX,
    OPENAI_FORMATS,
    PROMPT_MAX_CHARS,
    STREAMING_FORMATS,
    TRANSLATION_FORMATS,
    UNTIMED_FORMATS,
    FormBool,
    Keyword,
    Language,
    check_model_can,
)
from .job_fields import BackgroundFields
from .speaker_fields import SpeakerFields


# -- OpenAI's chunking_strategy -> VAD ---------------------------------------------------------------------
class ServerVad(BaseModel):
    """OpenAI's VadConfig object; what it leaves out is the VAD_* settings' default."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    type: Literal["server_vad"]
    threshold: float = Field(DEFAULTS.vad_threshold, ge=0, le=1, description="Speech probability threshold.")
    prefix_padding_ms: int = Field(
        DEFAULTS.vad_speech_pad_ms, ge=0, le=10_000, description="Audio kept before (and after) speech."
    )
    silence_duration_ms: int = Field(
        DEFAULTS.vad_min_silence_ms, ge=0, le=10_000, description="A pause this long ends a speech region."
    )

    def params(self) -> VadParams:
        return VadParams(
            threshold=self.threshold,
            min_silence_ms=self.silence_duration_ms,
            speech_pad_ms=self.prefix_padding_ms,
        )


ChunkingStrategy = Annotated[
    Union[Annotated[Literal["auto"], Tag("auto")], Annotated[ServerVad, Tag("server_vad")]],  # noqa: UP007
    Discriminator(lambda value: "auto" if isinstance(value, str) else "server_vad"),
]


# -- the OpenAI face -------------------------------------------------------------------------------------
class Request(BaseModel):
    """Shared configuration: unknown fields are refused, numbers are finite, instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, validate_by_name=True)


class TranslationForm(BackgroundFields, Request):
    """POST /v1/audio/translations (and the base of transcriptions): OpenAI's fields, then extensions."""

    model: str | None = Field(None, description="The loaded model or one of its aliases (GET /v1/models).")
    prompt: str | None = Field(None, max_length=PROMPT_MAX_CHARS, description="Conditions every window.")
    response_format: Literal[TRANSLATION_FORMATS] = Field(
        "json", description="How the transcript comes back."
    )
    temperature: float = Field(0.0, ge=0, le=1, description="0: openai-whisper's fallback ladder 0 ... 1.0.")
    stream: FormBool = Field(False, description="Server-Sent Events (json, text; verbose_json adds times).")
    chunking_strategy: ChunkingStrategy | None = Field(
        None,
        description="'auto' or a server_vad object (JSON or bracketed fields): voice activity detection.",
    )
    # extensions: the audio's language for translation, word timestamps, openai-whisper's decoding knobs
    language: Language = Field(
        None, description="ISO-639-1 code (or name, locale, 639-2 code); auto: detect."
    )
    timestamp_granularities: list[Literal["word", "segment"]] = Field(
        [], alias="timestamp_granularities[]", max_length=2, description="Needs response_format=verbose_json."
    )
    beam_size: int | None = Field(
        None, ge=1, le=MAX_BEAM_SIZE, description="Beam search width at temperature 0."
    )
    compression_ratio_threshold: float = Field(
        Thresholds.compression_ratio, ge=0, le=100, description="Retry hotter above this gzip ratio."
    )
    logprob_threshold: float = Field(
        Thresholds.logprob, ge=-100, le=0, description="Retry hotter below this mean log-probability."
    )
    no_speech_threshold: float = Field(
        Thresholds.no_speech, ge=0, le=1, description="Silence above this no-speech probability."
    )
    hallucination_silence_threshold: float | None = Field(
        None, ge=0, le=3600, description="Sequential mode: skip silences longer than this (seconds)."
    )
    condition_on_previous_text: FormBool = Field(
        False, description="Sequential decoding, each window conditioned on the last."
    )

    task: typing.ClassVar[str] = "translate"

    @field_validator("model")
    @classmethod
    def _served(cls, value: str | None, info: ValidationInfo) -> str | None:
        served = (info.context or {}).get("models")
        if value is not None and served is not None and value not in served:
            raise PydanticCustomError(
                "model_not_found",
                "unknown model '{model}': this server serves {served}",
                {"model": value[:60], "served": ", ".join(served)},
            )
        return value

    @field_validator("response_format", mode="before")
    @classmethod
    def _no_diarization(cls, value: object) -> object:
        if value == "diarized_json":
            raise PydanticCustomError(
                "unsupported_value", "diarized_json is for transcriptions: a translation has no speakers"
            )
        return value

    @field_validator("chunking_strategy", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                return json.loads(value)
            except ValueError:
                raise PydanticCustomError("json_invalid", "not a JSON object") from None
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> TranslationForm:
        if self.timestamp_granularities and self.response_format != "verbose_json":
            raise InvalidRequest(
                "timestamp_granularities[] requires response_format=verbose_json.",
                param="timestamp_granularities[]",
            )
        if self.stream and self.response_format not in STREAMING_FORMATS:
            raise InvalidRequest(
                f"response_format={self.response_format} cannot be streamed: with stream=true use "
                f"{' or '.join(STREAMING_FORMATS)}.",
                param="response_format",
                code="unsupported_value",
            )
        check_model_can(self.task, self.language, info, task_param="model")
        return self

    @property
    def words(self) -> bool:
        return "word" in self.timestamp_granularities

    @property
    def segments(self) -> bool:
        return "segment" in self.timestamp_granularities or not self.timestamp_granularities

    def job_options(self) -> JobOptions:
        """What the decoder is asked to do; what the request leaves open (None) is the server's to fill in
        (job.with_server_defaults)."""
        thresholds = Thresholds(
            compression_ratio=self.compression_ratio_threshold,
            logprob=self.logprob_threshold,
            no_speech=self.no_speech_threshold,
            hallucination_silence=self.hallucination_silence_threshold,
        )
        chunking = self.chunking_strategy
        return JobOptions(
            task=self.task,
            language=self.language,
            temperatures=FALLBACK_TEMPERATURES if self.temperature == 0 else (self.temperature,),
            prompt=self.full_prompt or None,
            beam_size=self.beam_size,
            word_timestamps=self.words,
            thresholds=thresholds,
            sequential=True if self.condition_on_previous_text else None,
            condition_on_previous_text=self.condition_on_previous_text,
            logprobs=self.logprobs,
            streamed=self.stream,
            timestamps=self.response_format not in UNTIMED_FORMATS,
            vad=chunking if chunking is None else (True if chunking == "auto" else chunking.params()),
        )

    @property
    def full_prompt(self) -> str:
        return self.prompt or ""

    @property
    def logprobs(self) -> bool:
        return False


class TranscriptionForm(SpeakerFields, TranslationForm):
    """POST /v1/audio/transcriptions: the translation fields plus those of OpenAI's newer models and the
    speaker fields (speaker_fields.py)."""

    languages: list[Language] = Field(
        [],
        alias="languages[]",
        max_length=1,
        description="gpt-transcribe's field: one language, as language.",
    )
    keywords: list[Keyword] = Field(
        [], alias="keywords[]", max_length=KEYWORDS_MAX, description="Words to expect: added to the prompt."
    )
    include: list[Literal["logprobs"]] = Field(
        [], alias="include[]", max_length=1, description="logprobs: each token's log-probability (json)."
    )

    response_format: Literal[OPENAI_FORMATS] = Field("json", description="How the transcript comes back.")

    task: typing.ClassVar[str] = "transcribe"

    @field_validator("response_format", mode="before")
    @classmethod
    def _no_diarization(cls, value: object) -> object:
        return value  # a transcription may be diarized

    @model_validator(mode="after")
    def _transcription_rules(self, info: ValidationInfo) -> TranscriptionForm:
        if self.include and self.response_format != "json":
            raise InvalidRequest("include[]=logprobs requires response_format=json.", param="include[]")
        if self.languages and self.language and self.languages[0] != self.language:
            raise InvalidRequest("language and languages[] disagree: send one of them.", param="languages[]")
        check_model_can(self.task, self.languages[0] if self.languages else None, info, task_param="model")
        return self

    def job_options(self) -> JobOptions:
        options = super().job_options()
        if self.languages and not self.language:
            options = replace(options, language=self.languages[0])
        if self.diarized:  # segments' times place their words (turns.estimated_words; docs/accuracy.md)
            options = replace(options, timestamps=True)
        return options

    @property
    def full_prompt(self) -> str:
        """Keywords bias the decoder the only way Whisper allows: as text it has 'already heard'."""
        return " ".join(filter(None, [self.prompt, ", ".join(self.keywords)]))

    @property
    def logprobs(self) -> bool:
        return "logprobs" in self.include
