"""The subtitle layout fields of both faces (fields.py): openai-whisper's writer options for srt and vtt
(service/subtitles.py). Extensions on the OpenAI face; on /asr, query parameters under the same names
(whisper-asr-webservice names none: its openai_whisper engine fixes max_line_width=1000, max_line_count=10).

openai-whisper's command line rules hold: `max_line_count` needs `max_line_width`, and `max_words_per_line`
has no effect with `max_line_width`, so each of those is a 400 here rather than a silent no-op. A layout is
laid out from the words' times, so asking for one turns word timestamps on.
"""

from __future__ import annotations

import dataclasses
import typing

from pydantic import BaseModel, Field, model_validator

from ..errors import InvalidRequest
from ..subtitles import MAX_LINE_COUNT, MAX_LINE_WIDTH, MAX_WORDS_PER_LINE, MIN_LINE_WIDTH, Layout
from .fields import FormBool

SUBTITLE_FORMATS = ("srt", "vtt")


class SubtitleFields(BaseModel):
    """max_line_width, max_line_count, max_words_per_line, highlight_words: srt and vtt only."""

    max_line_width: int | None = Field(
        None,
        ge=MIN_LINE_WIDTH,
        le=MAX_LINE_WIDTH,
        description="srt/vtt: break a line before a word would pass this many characters.",
    )
    max_line_count: int | None = Field(
        None,
        ge=1,
        le=MAX_LINE_COUNT,
        description="srt/vtt, with max_line_width: lines per cue.",
    )
    max_words_per_line: int | None = Field(
        None,
        ge=1,
        le=MAX_WORDS_PER_LINE,
        description="srt/vtt, without max_line_width: a new cue after this many words.",
    )
    highlight_words: FormBool = Field(False, description="srt/vtt: a cue per word, underlined (<u>).")

    format_field: typing.ClassVar[str] = "response_format"  # the field that names the output format

    @model_validator(mode="after")
    def _layout_rules(self) -> SubtitleFields:
        asked = [name for name, value in dataclasses.asdict(self.layout()).items() if value]
        fmt = getattr(self, self.format_field)
        if asked and fmt not in SUBTITLE_FORMATS:
            raise InvalidRequest(
                f"{asked[0]} lays out subtitles: it needs {self.format_field}=srt or vtt, not {fmt}.",
                param=asked[0],
            )
        if self.max_line_count and not self.max_line_width:
            raise InvalidRequest(
                "max_line_count needs max_line_width (lines are only counted where they are broken).",
                param="max_line_count",
            )
        if self.max_words_per_line and self.max_line_width:
            raise InvalidRequest(
                "max_words_per_line has no effect with max_line_width (openai-whisper's rule): send one.",
                param="max_words_per_line",
            )
        return self

    def layout(self) -> Layout:
        return Layout(self.max_line_width, self.max_line_count, self.max_words_per_line, self.highlight_words)
