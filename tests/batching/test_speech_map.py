"""Word times held to the speech map (service/batching/speech_map.py), as properties over generated cases."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from service.audio import SAMPLE_RATE
from service.batching.speech_map import WORD_PAD_SECONDS, held_to_speech
from service.intake.vad import Region
from service.transcript import Segment, Word


@st.composite
def speech_and_words(draw):
    """1-4 speech regions in 60 s, and 1-12 words in order anywhere in it (in speech, in silence, across)."""
    edges = sorted(draw(st.lists(st.integers(0, 60 * SAMPLE_RATE), min_size=2, max_size=8, unique=True)))
    speech = [Region(a, b) for a, b in zip(edges[::2], edges[1::2])]
    times = sorted(draw(st.lists(st.floats(0, 60, allow_nan=False), min_size=2, max_size=24)))
    words = tuple(Word(f" w{i}", a, b, 0.9) for i, (a, b) in enumerate(zip(times[::2], times[1::2])))
    return speech, Segment(words[0].start, words[-1].end, "text", (), words=words)


def padded(speech):
    return [
        (r.start / SAMPLE_RATE - WORD_PAD_SECONDS, r.end / SAMPLE_RATE + WORD_PAD_SECONDS) for r in speech
    ]


@given(speech_and_words())
def test_every_word_starts_in_speech_in_order_and_keeps_its_text(case):
    speech, segment = case
    held = held_to_speech(segment, speech)
    assert [w.word for w in held.words] == [w.word for w in segment.words]
    starts = [w.start for w in held.words]
    assert starts == sorted(starts)
    for word in held.words:
        assert word.start <= word.end
        assert any(a - 1e-9 <= word.start <= b + 1e-9 for a, b in padded(speech)), (word, speech)
    assert held.start == held.words[0].start and held.end >= held.words[-1].end


@given(speech_and_words())
def test_a_word_inside_speech_is_left_where_it_is(case):
    speech, segment = case
    inside = [
        i
        for i, w in enumerate(segment.words)
        if any(a <= w.start and w.end <= b for a, b in padded(speech))
        and all(p.start <= w.start for p in segment.words[:i])
    ]
    held = held_to_speech(segment, speech)
    for i in inside:
        assert held.words[i] == segment.words[i]


def test_the_first_word_stretched_over_leading_silence_starts_at_the_speech():
    """tiny.en: ' The' at 0.00 s for a sentence 0.7 s into the file; ' science.' 2.5 s after it ended."""
    speech = [Region(round(0.7 * SAMPLE_RATE), round(4.3 * SAMPLE_RATE))]
    words = (Word(" The", 0.0, 0.9, 0.9), Word(" library", 0.9, 1.4, 0.9), Word(" science.", 6.8, 7.3, 0.9))
    held = held_to_speech(Segment(0.0, 7.3, "text", (), words=words), speech)
    assert [(w.start, w.end) for w in held.words] == [
        (0.7 - WORD_PAD_SECONDS, 0.9),
        (0.9, 1.4),
        (4.3 + WORD_PAD_SECONDS, 4.3 + WORD_PAD_SECONDS),
    ]
    assert (held.start, held.end) == (0.7 - WORD_PAD_SECONDS, 4.3 + WORD_PAD_SECONDS)


def test_without_a_map_nothing_changes_and_a_bare_segment_ends_with_its_speech():
    segment = Segment(1.0, 2.0, "text", (), words=(Word(" a", 1.0, 2.0, 0.9),))
    assert held_to_speech(segment, []) == segment
    bare = Segment(1.0, 2.0, "text", ())
    assert held_to_speech(bare, []) == bare
    held = held_to_speech(bare, [Region(0, SAMPLE_RATE)])  # speech ends at 1.0 s (+ the pad)
    assert (held.start, held.end) == (1.0, 1.0 + WORD_PAD_SECONDS)


@given(speech_and_words())
def test_a_segment_without_word_times_is_held_like_one_word(case):
    """Without word timestamps (issue #30: ' ...' at 24.79-44.31 s, silence until 44.31 s), the segment's own
    start moves into speech; one already inside speech is left as it is."""
    speech, with_words = case
    segment = Segment(with_words.start, with_words.end, "text", ())
    held = held_to_speech(segment, speech)
    assert held.start <= held.end and held.words == segment.words
    assert any(a - 1e-9 <= held.start <= b + 1e-9 for a, b in padded(speech)), (held, speech)
    if any(a <= segment.start and segment.end <= b for a, b in padded(speech)):
        assert held == segment


def test_the_issue_segment_starting_in_silence_starts_at_its_sentence():
    speech = [
        Region(round(22.8 * SAMPLE_RATE), round(24.6 * SAMPLE_RATE)),
        Region(round(45.04 * SAMPLE_RATE), round(48.0 * SAMPLE_RATE)),
    ]
    held = held_to_speech(Segment(24.79 + WORD_PAD_SECONDS, 47.5, " Third sentence.", ()), speech)
    assert abs(held.start - (45.04 - WORD_PAD_SECONDS)) < 1e-6 and held.end == 47.5
