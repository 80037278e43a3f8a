"""The request fields of both API faces, declared once: names, types, ranges, defaults and descriptions.

Each operation's fields are one pydantic model: openai_fields.py (/v1/audio/...) and asr_fields.py (/asr,
/detect-language), over the types and rules shared here. `parse()` validates a multipart form or a query
string into an instance of one (400 in OpenAI's error shape, naming the field, on any violation; unknown
fields included), and openapi.py derives the document's request schemas from the same models, so what
/openapi.json declares is what the server enforces. `job_options()` turns a validated request into the
decoder's `JobOptions`; what it leaves open, the server's settings fill in (job.with_server_defaults).
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

from ..errors import InvalidRequest
from ..languages import LANGUAGES, language_code

OPENAI_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
TRANSLATION_FORMATS = OPENAI_FORMATS[:-1]  # a translation has no speakers
STREAMING_FORMATS = ("json", "text", "verbose_json", "diarized_json")  # verbose_json: an extension
ASR_OUTPUTS = ("txt", "vtt", "srt", "tsv", "json")
# responses that carry no times: decoded without timestamp tokens (UNTIMED_DECODING, docs/performance.md)
UNTIMED_FORMATS = ("json", "text")  # OpenAI's; whisper-asr-webservice's: txt
UNTIMED_OUTPUTS = ("txt",)
PROMPT_MAX_CHARS = 4000  # Whisper keeps the last 223 tokens of a prompt; this bounds the form field
# percent-encoded, the whole /asr request line must fit gunicorn's 8190 bytes (up to 12 bytes per character)
INITIAL_PROMPT_MAX_CHARS = 500
HOTWORDS_MAX_CHARS = 500  # faster-whisper keeps at most 223 tokens of them; as /asr's initial_prompt
HOTWORDS = "Names and terms to expect: faster-whisper's hotwords (openai-whisper: put before the prompt)."
KEYWORDS_MAX = 100  # keywords[] entries ...
KEYWORD_MAX_CHARS = 100  # ... of at most this many characters each

Language = Annotated[
    Union[str, None],  # noqa: UP007 - evaluated at runtime on Python 3.10 too
    BeforeValidator(language_code),
    WithJsonSchema({"type": "string", "enum": ["auto", *sorted(LANGUAGES)]}),
]
NAME_SHOWN_MAX = 64  # characters of a client's field name repeated in an error


def true_or_false(value: object) -> object:
    """Form and query booleans are the two words the API states (any case); not yes/on/1."""
    if isinstance(value, str):
        if value.lower() not in ("true", "false"):
            raise PydanticCustomError("bool_parsing", "must be true or false")
        return value.lower() == "true"
    return value


# form and query values are strings: declare booleans as the two spellings every client sends
FormBool = Annotated[
    bool, BeforeValidator(true_or_false), WithJsonSchema({"type": "string", "enum": ["true", "false"]})
]
Keyword = Annotated[str, Field(min_length=1, max_length=KEYWORD_MAX_CHARS)]


FILE_PARTS = ("file", "audio_file")
# fields OpenAI has that Whisper cannot honour, with the reason given in the 400
UNSUPPORTED: dict[str, str] = {}  # known_speaker_* moved to speaker_fields.py (#33)


def check_model_can(task: str, language: str | None, info: ValidationInfo, task_param: str) -> None:
    """An English-only model (tiny.en, base.en, ...) neither translates nor hears other languages."""
    if (info.context or {}).get("multilingual", True):
        return
    if task == "translate":
        raise InvalidRequest(
            "The loaded model is English-only: it cannot translate. Load a multilingual model to translate.",
            param=task_param,
            code="unsupported_task",
        )
    if language not in (None, "en"):
        raise InvalidRequest(
            f"The loaded model is English-only: it cannot transcribe {LANGUAGES.get(language, language)}.",
            param="language",
            code="unsupported_language",
        )


# -- validation ------------------------------------------------------------------------------------------
def parse(model: type[BaseModel], values, context: dict | None = None):
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
            data[wire] = _unpadded(field, wire, raw)
    for key in values:
        base = key.removesuffix("[]").split("[")[0]
        if base in FILE_PARTS:  # sent as text instead of a file: the handler says the file is missing
            continue
        if base in UNSUPPORTED:
            raise InvalidRequest(UNSUPPORTED[base], param=cut_name(key), code="unsupported_parameter")
        if not _consumed(model, key):
            data[key] = values.get(key)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as error:
        raise _invalid(error.errors()[0]) from None


def _consumed(model, key: str) -> bool:
    """Whether `key` is a spelling parse() reads: a field's name, a list's `name[]` or `name`, an object's
    `name[part]`. Anything else (`timestamp_granularities[0]`) is an unknown argument, not ignored."""
    for name, field in model.model_fields.items():
        wire = field.alias or name
        base = wire.removesuffix("[]")
        if key in (wire, base):
            return True
        if not _is_list(field.annotation) and key.startswith(base + "[") and key.endswith("]"):
            return True
    return False


def _unpadded(field, wire: str, raw: str) -> str:
    """A number or boolean exactly as sent: `temperature= 0.5 ` is refused, not trimmed."""
    if raw != raw.strip() and str not in _scalar_types(field.annotation):
        raise InvalidRequest(f"{wire}: spaces around the value, got {raw[:40]!r}.", param=wire)
    return raw


def _scalar_types(annotation) -> set:
    """The plain types an annotation admits, through Annotated, Optional and unions."""
    if typing.get_origin(annotation) is Annotated:
        return _scalar_types(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return set().union(*(_scalar_types(a) for a in typing.get_args(annotation)))
    if typing.get_origin(annotation) is typing.Literal:
        return {type(v) for v in typing.get_args(annotation)}
    return {annotation}


def cut_name(name: str) -> str:
    """A client's field name as an error repeats it: at most NAME_SHOWN_MAX characters."""
    return name if len(name) <= NAME_SHOWN_MAX else name[:NAME_SHOWN_MAX] + "..."


def _is_list(annotation) -> bool:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation))
    return typing.get_origin(annotation) is list


CUSTOM_CODES = ("unsupported_language", "model_not_found", "unsupported_value")


def _invalid(error: dict) -> InvalidRequest:
    """One pydantic error -> a 400 naming the field as the client spelled it."""
    param = cut_name(str(error["loc"][0])) if error["loc"] else None
    if error["type"] == "extra_forbidden":
        return InvalidRequest(
            f"Unrecognized request argument supplied: {param}.", param=param, code="unsupported_parameter"
        )
    where = ".".join(str(part) for part in error["loc"] if part not in ("server_vad", "auto"))
    if error["type"] in CUSTOM_CODES:  # our own messages name the value already
        return InvalidRequest(f"{where}: {error['msg']}.", param=param, code=error["type"])
    got = error.get("input")
    shown = f", got {str(got)[:40]!r}" if isinstance(got, (str, int, float)) else ""
    return InvalidRequest(f"{where}: {error['msg']}{shown}.", param=param)
