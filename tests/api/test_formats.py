"""The writers on a Transcript (no server): the details clients of both faces rely on."""

from __future__ import annotations

import json

from openai.types.audio import TranscriptionVerbose, TranslationVerbose

from service import formats
from service.transcript import Segment, Transcript, Word
from tests.api.contract import check_schema, check_type

SEGMENTS = (
    Segment(
        0.0, 2.5, " Hello there.", (1, 2), (Word(" Hello", 0.0, 1.0, 0.9), Word(" there.", 1.0, 2.5, 0.8))
    ),
    Segment(2.5, 4.0, " Second line\nwith a break.", (3,), seek=0),
    Segment(31.0, 33.0, "   ", (4,), seek=3100),
    Segment(33.0, 35.5, " Third --> arrow.", (5, 6), seek=3100),
)
TRANSCRIPT = Transcript("de", 35.2, SEGMENTS)


def test_asr_txt_is_one_line_per_segment():
    body, content_type = formats.render("txt", TRANSCRIPT)
    assert body.splitlines() == ["Hello there.", "Second line with a break.", "Third -> arrow."]
    assert content_type == "text/plain; charset=utf-8"


def test_openai_text_is_the_whole_text():
    body, _ = formats.render("text", TRANSCRIPT)
    assert body == TRANSCRIPT.text + "\n"


def test_a_translation_reports_english():
    body, _ = formats.render("verbose_json", TRANSCRIPT, task="translate")
    parsed = json.loads(body)
    assert parsed["language"] == "english"
    check_type(TranslationVerbose, parsed)
    check_schema("CreateTranslationResponseVerboseJson", parsed)
    body, _ = formats.render("verbose_json", TRANSCRIPT, task="transcribe", words=True)
    parsed = json.loads(body)
    assert parsed["language"] == "german"
    check_type(TranscriptionVerbose, parsed)
    check_schema("CreateTranscriptionResponseVerboseJson", parsed)
    assert [w["word"] for w in parsed["words"]] == [" Hello", " there."]


def test_every_content_type_names_its_charset_once():
    for fmt in ("json", "text", "txt", "srt", "vtt", "tsv", "verbose_json", "asr_json"):
        _, content_type = formats.render(fmt, TRANSCRIPT)
        assert content_type.count("charset") <= 1, (fmt, content_type)


def test_stream_usage_is_the_token_kind_the_done_event_accepts():
    usage = formats.token_usage(TRANSCRIPT)
    check_schema("TranscriptTextUsageTokens", usage)
    assert usage["input_tokens"] == 1760 and usage["output_tokens"] == 6
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
