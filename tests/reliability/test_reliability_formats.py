"""Property tests (hypothesis) for the subtitle writers: SRT, VTT and TSV stay well formed for any text and
any times, cue times never run backwards, and the text survives up to the documented normalisation
(line breaks and the whitespace around them become one space, the ends are stripped, '-->' is shortened)."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.formats import to_srt, to_tsv, to_vtt
from service.transcript import Segment, Transcript

SRT_TIME = re.compile(r"^(\d{2,}):(\d\d):(\d\d),(\d{3}) --> (\d{2,}):(\d\d):(\d\d),(\d{3})$")
VTT_TIME = re.compile(r"^(\d{2,}):(\d\d):(\d\d)\.(\d{3}) --> (\d{2,}):(\d\d):(\d\d)\.(\d{3})$")

# up to 111 h, so hours also take three digits (WebVTT allows two or more)
seconds = st.floats(min_value=0, max_value=400_000, allow_nan=False, allow_infinity=False)
texts = st.text(max_size=60) | st.sampled_from(["-->", "--->", "a --> b", "\r\n\r\n", " \n ", "1\n\n2", "\t"])
segment = st.builds(Segment, start=seconds, end=seconds, text=texts, tokens=st.just(()))
transcriptions = st.builds(Transcript, st.just("en"), seconds, st.lists(segment, max_size=12).map(tuple))


def kept(text: str) -> list[str]:
    """What must survive whatever the normalisation: every character but whitespace and '-' (in order)."""
    return [c for c in text if not c.isspace() and c != "-"]


def visible(t: Transcript) -> list[str]:
    """Texts of the segments that must become cues: those with anything but whitespace."""
    return [s.text for s in t.segments if s.text.strip()]


def millis(groups: tuple[str, ...]) -> tuple[int, int]:
    h1, m1, s1, f1, h2, m2, s2, f2 = map(int, groups)
    return ((h1 * 60 + m1) * 60 + s1) * 1000 + f1, ((h2 * 60 + m2) * 60 + s2) * 1000 + f2


def check_cue_text(line: str, original: str) -> None:
    assert line and line == line.strip() and "-->" not in line
    assert "\n" not in line and "\r" not in line
    assert kept(line) == kept(original)


def check_times(times: list[tuple[int, int]]) -> None:
    previous_end = 0
    for start, end in times:
        assert previous_end <= start <= end
        previous_end = end


def parse_blocks(body: str, timing: re.Pattern, numbered: bool) -> tuple[list[tuple[int, int]], list[str]]:
    blocks = body.split("\n\n") if body else []
    times, lines = [], []
    for index, block in enumerate(blocks, 1):
        rows = block.rstrip("\n").split("\n")
        if numbered:
            assert rows.pop(0) == str(index)
        assert len(rows) == 2, block  # a timing line and exactly one text line
        match = timing.match(rows[0])
        assert match, rows[0]
        times.append(millis(match.groups()))
        lines.append(rows[1])
    return times, lines


@settings(max_examples=300, deadline=None)
@given(transcriptions)
@example(Transcript("en", 1.0, (Segment(0.0, 1.0, "a ---> b", ()),)))
def test_srt_is_well_formed_monotonic_and_keeps_the_text(t):
    body, mimetype = to_srt(t)
    assert mimetype.startswith("application/x-subrip")
    times, lines = parse_blocks(body, SRT_TIME, numbered=True)
    check_times(times)
    assert len(lines) == len(visible(t))
    for line, original in zip(lines, visible(t)):
        check_cue_text(line, original)


@settings(max_examples=300, deadline=None)
@given(transcriptions)
@example(Transcript("en", 1.0, (Segment(0.0, 1.0, "WEBVTT\n\nNOTE -->", ()),)))
def test_vtt_is_well_formed_monotonic_and_keeps_the_text(t):
    body, mimetype = to_vtt(t)
    assert mimetype.startswith("text/vtt")
    assert body.startswith("WEBVTT\n\n")
    times, lines = parse_blocks(body[len("WEBVTT\n\n") :], VTT_TIME, numbered=False)
    check_times(times)
    assert len(lines) == len(visible(t))
    for line, original in zip(lines, visible(t)):
        check_cue_text(line, original)


@settings(max_examples=300, deadline=None)
@given(transcriptions)
def test_tsv_has_three_columns_integer_millis_and_keeps_the_text(t):
    body, _ = to_tsv(t)
    assert body.endswith("\n")
    rows = body[:-1].split("\n")
    assert rows[0] == "start\tend\ttext"
    times = []
    for row, original in zip(rows[1:], visible(t), strict=True):
        start, end, text = row.split("\t")  # exactly three columns: no tab survives in the text
        times.append((int(start), int(end)))
        check_cue_text(text, original)
    check_times(times)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 10_000, allow_nan=False),
            st.floats(0, 60, allow_nan=False),
            st.text(
                alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs")),
                min_size=1,
                max_size=30,
            ),
        ),
        max_size=8,
    )
)
def test_ordered_segments_keep_their_exact_times_and_text(parts):
    """Sorted, non-overlapping segments with plain text come out unchanged, to the millisecond."""
    segments, clock = [], 0.0
    for gap, length, text in parts:
        start = clock + gap
        segments.append(Segment(start, start + length, text.replace("-->", ""), ()))
        clock = start + length
    t = Transcript("en", clock, tuple(s for s in segments if s.text))
    times, lines = parse_blocks(to_srt(t)[0], SRT_TIME, numbered=True)
    assert lines == [s.text for s in t.segments]
    for (start, end), s in zip(times, t.segments):
        assert abs(start - s.start * 1000) <= 0.5 + 1e-6 and abs(end - s.end * 1000) <= 0.5 + 1e-6
