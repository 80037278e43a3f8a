"""The diarizer's parts without the model: clustering finds the voices it is given, a word takes the speaker
who covers it most, segments split exactly where the speaker changes, labels follow first speech."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.speakers import clustering, turns
from service.speakers.turns import Turn
from service.transcript import Segment, Transcript, Word


def voices(k: int, per: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`per` embeddings around each of k random unit voices (256-d), L2-normed, with their true labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, 256))
    truth = np.repeat(np.arange(k), per)
    rows = centres[truth] / np.linalg.norm(centres[truth], axis=1, keepdims=True)
    rows = rows + rng.normal(scale=spread / 16, size=rows.shape)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True), truth


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len({(x, y) for x, y in zip(a, b)}) == len(set(a)) == len(set(b))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("seed", range(5))
def test_clustering_finds_the_voices_it_is_given(k, seed):
    vectors, truth = voices(k, 12, spread=0.5, seed=seed)
    assert same_partition(clustering.cluster(vectors), truth)


def test_min_and_max_speakers_bound_the_count():
    vectors, _ = voices(4, 10, spread=0.5, seed=1)
    assert len(set(clustering.cluster(vectors, max_speakers=2))) == 2
    one, _ = voices(1, 20, spread=0.5, seed=2)
    assert len(set(clustering.cluster(one, min_speakers=2))) == 2
    assert len(set(clustering.cluster(vectors[:1]))) == 1  # one piece: one speaker, whatever the hints


spans = st.lists(st.floats(0.05, 3.0), min_size=1, max_size=12)


@st.composite
def timelines(draw):
    """Turns of up to 4 speakers with gaps, in order."""
    t, out = 0.0, []
    for length in draw(spans):
        t += draw(st.floats(0.0, 1.0))
        out.append(Turn(t, t + length, draw(st.integers(0, 3))))
        t += length
    return out


@settings(max_examples=300, deadline=None)
@given(timelines(), st.floats(0.0, 30.0), st.floats(0.01, 3.0))
def test_a_word_takes_the_speaker_who_covers_it_most(found, start, length):
    end = start + length
    cover = {}
    for t in found:
        cover[t.speaker] = cover.get(t.speaker, 0.0) + max(0.0, min(end, t.end) - max(start, t.start))
    who = turns.speaker_at(start, end, found)
    if max(cover.values()) > 0:
        assert cover[who] == max(cover.values())
    else:  # nobody speaks there: the nearest turn's speaker
        middle = (start + end) / 2
        distance = [(max(t.start - middle, middle - t.end), t.speaker) for t in found]
        assert min(d for d, s in distance if s == who) == min(d for d, _ in distance)


@settings(max_examples=200, deadline=None)
@given(timelines(), st.lists(st.floats(0.05, 1.0), min_size=1, max_size=20))
def test_segments_split_exactly_where_the_speaker_changes(found, lengths):
    t, words = 0.0, []
    for i, length in enumerate(lengths):
        words.append(Word(f" w{i}", t, t + length, 0.9))
        t += length + 0.05
    logprobs = (("a", -0.1), ("b", -0.2))
    segment = Segment(0.0, t, "".join(w.word for w in words), (1, 2, 3), tuple(words), logprobs=logprobs)
    pieces = turns.split(segment, found)
    assert "".join(p.text for p, _ in pieces) == segment.text  # nothing lost, nothing repeated
    assert [w for p, _ in pieces for w in p.words] == words
    assert all(a[1] != b[1] for a, b in zip(pieces, pieces[1:]))  # a new piece only at a change
    for piece, who in pieces:
        assert all(turns.speaker_at(w.start, w.end, found) == who for w in piece.words)
    assert sum(len(p.tokens) for p, _ in pieces) == 3  # the tokens are counted once
    assert [lp for p, _ in pieces for lp in p.logprobs or ()] == list(logprobs)  # their logprobs too
    assert pieces[0][0].start == segment.start and pieces[-1][0].end == segment.end


@settings(max_examples=200, deadline=None)
@given(timelines(), st.lists(st.text("abc,.'", min_size=1, max_size=8), min_size=1, max_size=20))
def test_a_segment_without_word_times_splits_by_its_text(found, words):
    """Untimed words take the segment's time in proportion to their characters; the text survives whole."""
    text = "".join(" " + w for w in words)
    segment = Segment(1.0, 1.0 + 0.3 * len(words), text, (5,), None)
    estimated = turns.estimated_words(segment)
    assert "".join(w.word for w in estimated) == text
    assert estimated[0].start == segment.start and abs(estimated[-1].end - segment.end) < 1e-9
    assert all(a.end == b.start for a, b in zip(estimated, estimated[1:]))
    pieces = turns.split(segment, found)
    assert "".join(p.text for p, _ in pieces) == text and all(p.words is None for p, _ in pieces)
    assert all(a[1] != b[1] for a, b in zip(pieces, pieces[1:]))


def test_labels_follow_first_speech_and_known_voices_take_their_names():
    found = [Turn(0, 1, 7), Turn(1, 2, 3), Turn(2, 3, 5), Turn(3, 4, 3)]
    words = [Word(f" w{i}", i + 0.2, i + 0.8, 0.9) for i in range(4)]
    transcript = Transcript("en", 4.0, (Segment(0, 4, " w0 w1 w2 w3", (1,), tuple(words)),))
    rng = np.random.default_rng(0)
    voice = {g: v / np.linalg.norm(v) for g, v in zip((7, 3, 5), rng.normal(size=(3, 256)))}
    plain = turns.labelled(transcript, found, voice, {})
    assert [s.speaker for s in plain.segments] == ["A", "B", "C", "B"]
    assert [w.speaker for w in plain.words] == ["A", "B", "C", "B"]
    named = turns.labelled(transcript, found, voice, {"zoe": voice[3], "yan": -voice[5]})
    assert [s.speaker for s in named.segments] == ["A", "zoe", "B", "zoe"]  # yan matches no voice


def test_a_known_name_that_is_a_letter_is_not_given_again():
    """known_speaker_names[]=A matching the second voice: the first voice is not labelled 'A' too."""
    rng = np.random.default_rng(1)
    voice = {g: v / np.linalg.norm(v) for g, v in zip((7, 3, 5), rng.normal(size=(3, 256)))}
    assert turns.names([7, 3, 5], voice, {"A": voice[3]}) == {7: "B", 3: "A", 5: "C"}


@settings(max_examples=200, deadline=None)
@given(timelines(), st.lists(st.tuples(st.floats(0.1, 2.0), st.booleans()), min_size=1, max_size=12),
       st.booleans())  # fmt: skip
def test_the_first_segments_are_labelled_as_the_whole_transcript_is(found, shapes, known):
    """What a diarized stream relies on: each window's segments, labelled once the windows before it are
    decoded, carry the labels (and splits) the whole transcript's labelling gives them, known names too."""
    rng = np.random.default_rng(len(shapes))
    rows = rng.normal(size=(4, 256))
    rows[1] = rows[0] + 0.3 * rows[1]  # two close voices: zoe's reference matches both, speaker 0 best
    voice = {g: v / np.linalg.norm(v) for g, v in zip(range(4), rows)}
    references = {"zoe": voice[0]} if known else {}
    t, segments = 0.0, []
    for i, (length, timed) in enumerate(shapes):
        halves = (Word(f" a{i}", t, t + length / 2, 0.9), Word(f" b{i}", t + length / 2, t + length, 0.9))
        segments.append(Segment(t, t + length, f" a{i} b{i}", (i,), halves if timed else None))
        t += length + 0.1
    whole = turns.labelled_segments(segments, found, voice, references)
    for k in range(1, len(segments) + 1):
        first = turns.labelled_segments(segments[:k], found, voice, references)
        assert first == whole[: len(first)]
    label = turns.Labeller(found, voice, references)  # as a stream labels them: a segment at a time
    assert [piece for segment in segments for piece in label([segment])] == whole
    assert "".join(s.text for s in whole) == "".join(s.text for s in segments)
