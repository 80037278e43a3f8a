"""The subtitle layout (service/subtitles.py, openai-whisper's writer options) read back line by line, as
properties over generated transcripts: no line past the width, no cue past the line count or word count,
every word once and in order, one underlined cue per word, speakers' labels on every cue of theirs."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from service import formats
from service.api import fields
from service.api.asr_fields import AsrQuery
from service.api.openai_fields import TranscriptionForm, TranslationForm
from service.subtitles import Layout
from service.transcript import Segment, Transcript, Word
from tests.api.test_fields import refused

TIMING = re.compile(r"^(\d\d:\d\d:\d\d[,.]\d{3}) --> (\d\d:\d\d:\d\d[,.]\d{3})$")
LABEL = re.compile(r"^(?:\[(?P<srt>[^\]]+)\] |<v (?P<vtt>[^>]+)>)")


# -- generated transcripts -------------------------------------------------------------------------------
@st.composite
def transcripts(draw, speakers: bool = False) -> Transcript:
    segments, at = [], 0.0
    for _ in range(draw(st.integers(1, 5))):
        words = []
        for _ in range(draw(st.integers(1, 14))):
            at += draw(st.sampled_from([0.0, 0.1, 0.5, 3.5]))  # 3.5: a pause that starts a new cue
            length = draw(st.integers(1, 24))
            word = draw(st.text("abcdefghijklmnopqrstuvwxyzÄé'.,?-", min_size=length, max_size=length))
            end = at + draw(st.floats(0.0, 1.0))
            words.append(Word(" " + word, at, end, 0.9))
            at = end
        speaker = draw(st.sampled_from(["A", "B", "Zoë"])) if speakers else None
        text = "".join(w.word for w in words)
        segments.append(Segment(words[0].start, words[-1].end, text, (1,), tuple(words), speaker=speaker))
    return Transcript("en", at + 1, tuple(segments))


layouts = st.one_of(
    st.builds(Layout, st.integers(10, 60), st.one_of(st.none(), st.integers(1, 4))),
    st.builds(Layout, max_words_per_line=st.integers(1, 6)),
    st.builds(Layout, st.integers(10, 40), st.integers(1, 3), highlight_words=st.just(True)),
    st.builds(Layout, max_words_per_line=st.integers(1, 4), highlight_words=st.just(True)),
    st.just(Layout(highlight_words=True)),
)


# -- reading the files back ----------------------------------------------------------------------------
def read(fmt: str, body: str) -> list[tuple[str, str, list[str]]]:
    """(start, end, text lines) per cue, checking the file's frame as it goes."""
    if fmt == "vtt":
        assert body.startswith("WEBVTT\n\n")
        body = body[len("WEBVTT\n\n") :]
    out = []
    for number, block in enumerate(filter(None, body.split("\n\n")), 1):
        lines = block.rstrip("\n").split("\n")
        if fmt == "srt":
            assert lines.pop(0) == str(number)
        times = TIMING.match(lines[0])
        assert times, lines[0]
        assert lines[1:] and all(line.strip() for line in lines[1:]), block  # no blank line inside a cue
        assert not any("-->" in line for line in lines[1:])
        out.append((times[1], times[2], lines[1:]))
    return out


def unlabelled(lines: list[str]) -> tuple[str | None, list[str]]:
    label = LABEL.match(lines[0])
    if not label:
        return None, lines
    return label["srt"] or label["vtt"], [lines[0][label.end() :], *lines[1:]]


def plain(line: str) -> str:
    return line.replace("<u>", "").replace("</u>", "")


# -- the properties ------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transcripts(speakers=True), layouts, st.sampled_from(["srt", "vtt"]))
def test_the_layout_holds_line_by_line(t: Transcript, layout: Layout, fmt: str):
    body, _ = formats.render(fmt, t, layout=layout)
    cues = read(fmt, body)
    times = [(start.replace(",", "."), end.replace(",", ".")) for start, end, _ in cues]
    assert all(a <= b for a, b in times) and all(b <= c for (_, b), (c, _) in zip(times, times[1:]))
    shown, underlined, last_position = [], [], -1
    for _, _, lines in cues:
        speaker, lines = unlabelled(lines)
        words = [w for line in lines for w in plain(line).split()]
        said = {w.speaker for s in t.segments for w in s.words if w.word.strip() in words}
        assert speaker in said or said == {None}, (speaker, lines)
        for line in lines:
            if layout.max_line_width and len(plain(line).split()) > 1:
                assert len(plain(line)) <= layout.max_line_width, (line, layout)
        if layout.max_line_count:
            assert len(lines) <= layout.max_line_count, (lines, layout)
        if layout.max_words_per_line:
            assert len(words) <= layout.max_words_per_line, (lines, layout)
        marks = re.findall(r"<u>(.*?)</u>", "\n".join(lines))
        if layout.highlight_words:
            assert len(marks) <= 1
            underlined += marks
            if marks:  # a cue's words are shown again for each of them: count them once
                position = len(plain("\n".join(lines).split("<u>")[0]).split())
                if not shown or shown[-1] != words or position <= last_position:
                    shown.append(words)
                last_position = position
        else:
            assert not marks
            shown.append(words)
    said = [w.word.strip() for s in t.segments for w in s.words]
    assert [w for words in shown for w in words] == said  # every word once, in order
    if layout.highlight_words:
        assert underlined == said  # one underlined cue per word


@settings(max_examples=100, deadline=None)
@given(transcripts(), st.sampled_from(["srt", "vtt"]))
def test_a_width_alone_keeps_every_segment_its_own_cue(t: Transcript, fmt: str):
    cues = read(fmt, formats.render(fmt, t, layout=Layout(max_line_width=20))[0])
    texts = [" ".join(line for line in lines).split() for _, _, lines in cues]
    assert texts == [s.text.split() for s in t.segments]


def test_whisper_breaks_lines_and_cues_as_its_command_line_does():
    words = [
        Word(" " + w, i * 0.5, i * 0.5 + 0.4, 0.9) for i, w in enumerate("one two three four five".split())
    ]
    t = Transcript("en", 3.0, (Segment(0.0, 2.4, " one two three four five", (1,), tuple(words)),))
    srt, _ = formats.render("srt", t, layout=Layout(max_line_width=10, max_line_count=1))
    assert srt.split("\n\n")[:2] == [
        "1\n00:00:00,000 --> 00:00:00,900\none two",
        "2\n00:00:01,000 --> 00:00:01,900\nthree four",  # 10 characters: room
    ]
    vtt, _ = formats.render("vtt", t, layout=Layout(max_words_per_line=2, highlight_words=True))
    assert "00:00:00.000 --> 00:00:00.400\n<u>one</u> two\n" in vtt
    assert "00:00:00.400 --> 00:00:00.500\none two\n" in vtt  # the gap between two words: unmarked


def test_words_that_would_break_the_file_are_tamed():
    words = (
        Word(" a\n\nb", 0.0, 0.5, 0.9),
        Word(" --", 0.5, 1.0, 0.9),
        Word(">", 1.0, 1.2, 0.9),
        Word("  ", 1.2, 1.3, 0.9),
    )
    t = Transcript("en", 2.0, (Segment(0.0, 1.3, " a b -->", (1,), words, speaker="<A>"),))
    for fmt in ("srt", "vtt"):
        cues = read(fmt, formats.render(fmt, t, layout=Layout(max_line_width=10))[0])
        expected = "[<A>] a b ->" if fmt == "srt" else "<v A>a b ->"
        assert [line for _, _, lines in cues for line in lines] == [expected]


def test_segments_without_word_times_are_spread_over_their_time():
    t = Transcript("en", 4.0, (Segment(0.0, 4.0, " aaaa bbbb cccc dddd", (1,)),))
    cues = read("srt", formats.render("srt", t, layout=Layout(max_words_per_line=2))[0])
    assert cues == [
        ("00:00:00,000", "00:00:02,000", ["aaaa bbbb"]),
        ("00:00:02,000", "00:00:04,000", ["cccc dddd"]),
    ]


# -- the fields ------------------------------------------------------------------------------------------
def test_the_fields_reach_the_writer_and_turn_word_timestamps_on():
    form = fields.parse(
        TranscriptionForm,
        MultiDict([("response_format", "vtt"), ("max_line_width", "42"), ("max_line_count", "2")]),
    )
    assert form.layout() == Layout(42, 2) and form.job_options().word_timestamps
    query = fields.parse(AsrQuery, MultiDict([("output", "srt"), ("highlight_words", "true")]))
    assert query.layout() == Layout(highlight_words=True) and query.job_options().word_timestamps
    assert not fields.parse(AsrQuery, MultiDict([("output", "srt")])).job_options().word_timestamps


def test_refusals_name_the_field():
    srt = ("response_format", "srt")
    cases = [
        (TranscriptionForm, [srt, ("max_line_width", "9")], "max_line_width"),
        (TranslationForm, [srt, ("max_line_width", "1001")], "max_line_width"),
        (TranscriptionForm, [srt, ("max_line_count", "0")], "max_line_count"),
        (TranscriptionForm, [srt, ("max_line_count", "2")], "max_line_count"),  # needs a width
        (
            TranscriptionForm,
            [srt, ("max_line_width", "20"), ("max_words_per_line", "3")],
            "max_words_per_line",
        ),
        (
            TranscriptionForm,
            [("response_format", "verbose_json"), ("max_line_width", "20")],
            "max_line_width",
        ),
        (TranslationForm, [("highlight_words", "true")], "highlight_words"),
        (TranscriptionForm, [srt, ("highlight_words", "yes")], "highlight_words"),
        (AsrQuery, [("output", "txt"), ("max_words_per_line", "3")], "max_words_per_line"),
        (AsrQuery, [("output", "vtt"), ("max_line_width", "abc")], "max_line_width"),
    ]
    for model, pairs, param in cases:
        error = refused(model, *pairs)
        assert error["param"] == param, (pairs, error)
        assert param in error["message"]
