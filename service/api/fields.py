"""The request fields of both API faces, declared once: names, types, ranges, defaults and descriptions.

Each operation's fields are one pydantic model. `parse()` validates a multipart form or a query string into
an instance of it (400 in OpenAI's error shape, naming the field, on any violation; unknown fields included),
and openapi.py derives the document's request schemas from the same models, so what /openapi.json declares
is what the server enforces. `job_options()` turns a validated request into the decoder's `JobOptions`.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import replace
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..batching.job import FALLBACK_TEMPERATURES, JobOptions
from ..engines.base import Thresholds
from ..errors import InvalidRequest
from ..intake.vad import VadParams
from ..languages import LANGUAGES, language_code
from ..settings import MAX_BEAM_SIZE, Settings

OPENAI_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
STREAMING_FORMATS = ("json", "text")  # what the client's stream event types can carry
ASR_OUTPUTS = ("txt", "vtt", "srt", "tsv", "json")
PROMPT_MAX_CHARS = 4000  # Whisper keeps the last 223 tokens of a prompt; this bounds the form field
# percent-encoded, the whole /asr request line must fit gunicorn's 8190 bytes (up to 12 bytes per character)
INITIAL_PROMPT_MAX_CHARS = 500
KEYWORDS_MAX = 100  # keywords[] entries ...
KEYWORD_MAX_CHARS = 100  # ... of at most this many characters each

Language = Annotated[
    Union[str, None],  # noqa: UP007 - evaluated at runtime on Python 3.10 too
    BeforeValidator(language_code),
    WithJsonSchema({"type": "string", "enum": ["auto", *sorted(LANGUAGES)]}),
]
# form and query values are strings: declare booleans as the two spellings every client sends
FormBool = Annotated[bool, WithJsonSchema({"type": "string", "enum": ["true", "false"]})]
Keyword = Annotated[str, Field(min_length=1, max_length=KEYWORD_MAX_CHARS)]


# -- OpenAI's chunking_strategy -> VAD ---------------------------------------------------------------------
class ServerVad(BaseModel):
    """OpenAI's VadConfig object; what it leaves out is the VAD_* settings' default."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    type: Literal["server_vad"]
    threshold: float = Field(Settings.vad_threshold, ge=0, le=1, description="Speech probability threshold.")
    prefix_padding_ms: int = Field(
        Settings.vad_speech_pad_ms, ge=0, le=10_000, description="Audio kept before (and after) speech."
    )
    silence_duration_ms: int = Field(
        Settings.vad_min_silence_ms, ge=0, le=10_000, description="A pause this long ends a speech region."
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


class TranslationForm(Request):
    """POST /v1/audio/translations (and the base of transcriptions): OpenAI's fields, then extensions."""

    model: str | None = Field(None, description="The loaded model or one of its aliases (GET /v1/models).")
    prompt: str | None = Field(None, max_length=PROMPT_MAX_CHARS, description="Conditions every window.")
    response_format: Literal[OPENAI_FORMATS] = Field("json", description="How the transcript comes back.")
    temperature: float = Field(0.0, ge=0, le=1, description="0: openai-whisper's fallback ladder 0 ... 1.0.")
    stream: FormBool = Field(False, description="Server-Sent Events (json and text formats only).")
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
                "model_not_found", "unknown model '{model}': this server serves {served}",
                {"model": value[:60], "served": ", ".join(served)},
            )  # fmt: skip
        return value

    @field_validator("response_format", mode="before")
    @classmethod
    def _no_diarization(cls, value: object) -> object:
        if value == "diarized_json":
            raise PydanticCustomError(
                "unsupported_value", "diarized_json needs speaker diarization, which Whisper does not do"
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
                f"{' or '.join(STREAMING_FORMATS)}.", param="response_format", code="unsupported_value",
            )  # fmt: skip
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
            vad=chunking if chunking is None else (True if chunking == "auto" else chunking.params()),
        )

    @property
    def full_prompt(self) -> str:
        return self.prompt or ""

    @property
    def logprobs(self) -> bool:
        return False


class TranscriptionForm(TranslationForm):
    """POST /v1/audio/transcriptions: the translation fields plus those of OpenAI's newer models."""

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

    task: typing.ClassVar[str] = "transcribe"

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
        return options

    @property
    def full_prompt(self) -> str:
        """Keywords bias the decoder the only way Whisper allows: as text it has 'already heard'."""
        return " ".join(filter(None, [self.prompt, ", ".join(self.keywords)]))

    @property
    def logprobs(self) -> bool:
        return "logprobs" in self.include


FILE_PARTS = ("file", "audio_file")
# fields OpenAI has that Whisper cannot honour, with the reason given in the 400
UNSUPPORTED = {
    "known_speaker_names": "Speaker diarization is not supported: Whisper does not label speakers.",
    "known_speaker_references": "Speaker diarization is not supported: Whisper does not label speakers.",
}


def check_model_can(task: str, language: str | None, info: ValidationInfo, task_param: str) -> None:
    """An English-only model (tiny.en, base.en, ...) neither translates nor hears other languages."""
    if (info.context or {}).get("multilingual", True):
        return
    if task == "translate":
        raise InvalidRequest(
            "The loaded model is English-only: it cannot translate. Load a multilingual model to translate.",
            param=task_param, code="unsupported_task",
        )  # fmt: skip
    if language not in (None, "en"):
        raise InvalidRequest(
            f"The loaded model is English-only: it cannot transcribe {LANGUAGES.get(language, language)}.",
            param="language", code="unsupported_language",
        )  # fmt: skip


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
        )


class DetectQuery(BaseModel):
    """POST /detect-language's query parameters."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    encode: FormBool = Field(True, description="false: audio_file is raw 16 kHz mono s16le PCM.")


# -- validation ------------------------------------------------------------------------------------------
def parse(model: type[Request] | type[BaseModel], values, context: dict | None = None):
    """A form or query MultiDict -> a validated `model`; 400 naming the first offending field otherwise.

    Empty values count as absent; list fields are read from `name[]` and `name`; bracketed fields
    (`chunking_strategy[type]`) become an object."""
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        wire = field.alias or name
        base = wire.removesuffix("[]")
        if _is_list(field.annotation):
            items = [v for key in dict.fromkeys((wire, base)) for v in values.getlist(key) if v != ""]
            if items:
                data[wire] = items
            continue
        nested = {
            k[len(base) + 1 : -1]: values.get(k)
            for k in values
            if k.startswith(base + "[") and k.endswith("]")
        }
        raw = values.get(wire)
        if nested:
            data[wire] = nested
        elif raw is not None and raw != "":
            data[wire] = raw
    for key in values:
        base = key.removesuffix("[]").split("[")[0]
        if base in FILE_PARTS:  # sent as text instead of a file: the handler says the file is missing
            continue
        if base in UNSUPPORTED:
            raise InvalidRequest(UNSUPPORTED[base], param=key, code="unsupported_parameter")
        if base not in data and not _declared(model, base):
            data[key] = values.get(key)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as error:
        raise _invalid(error.errors()[0]) from None


def _declared(model, base: str) -> bool:
    return any((f.alias or n).removesuffix("[]") == base for n, f in model.model_fields.items())


def _is_list(annotation) -> bool:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation))
    return typing.get_origin(annotation) is list


CUSTOM_CODES = ("unsupported_language", "model_not_found", "unsupported_value")


def _invalid(error: dict) -> InvalidRequest:
    """One pydantic error -> a 400 naming the field as the client spelled it."""
    param = str(error["loc"][0]) if error["loc"] else None
    if error["type"] == "extra_forbidden":
        return InvalidRequest(f"Unrecognized request argument supplied: {param}.", param=param,
                              code="unsupported_parameter")  # fmt: skip
    where = ".".join(str(part) for part in error["loc"] if part not in ("server_vad", "auto"))
    if error["type"] in CUSTOM_CODES:  # our own messages name the value already
        return InvalidRequest(f"{where}: {error['msg']}.", param=param, code=error["type"])
    got = error.get("input")
    shown = f", got {str(got)[:40]!r}" if isinstance(got, (str, int, float)) else ""
    return InvalidRequest(f"{where}: {error['msg']}{shown}.", param=param)
