"""The diarizer's grouping rules on generated embeddings: voices in close pairs (two of one accent, two
women and two men) are told apart, one voice is never cut however its pieces spread, and touching pieces
of one voice merge while a voice change inside a region does not."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.speakers import clustering, embeddings
from tests.speakers.test_turns import same_partition, voices


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def paired_voices(pairs: int, per: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two voices per family, each voice's pieces around it: voices of one family about 0.8 alike
    (closer than the 0.25 cosine distance a fixed threshold would split at), families about 0.5 alike."""
    rng = np.random.default_rng(seed)
    shared = unit(rng.normal(size=256))
    families = unit(shared + 0.9 * unit(rng.normal(size=(pairs, 256))))
    centres = unit(np.repeat(families, 2, axis=0) + 0.45 * unit(rng.normal(size=(2 * pairs, 256))))
    truth = np.repeat(np.arange(2 * pairs), per)
    rows = unit(centres[truth] + 0.4 * unit(rng.normal(size=(len(truth), 256))))
    return rows, truth


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(5, 12), st.integers(0, 2**32 - 1))
def test_voices_in_close_pairs_are_told_apart(pairs, per, seed):
    vectors, truth = paired_voices(pairs, per, seed)
    centres = unit(np.stack([vectors[truth == k].mean(axis=0) for k in range(2 * pairs)]))
    assert float(centres[0] @ centres[1]) > 0.75  # one pair as close as a fixed 0.25 threshold would merge
    assert same_partition(clustering.cluster(vectors), truth)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 40), st.floats(0.1, 3.0), st.integers(0, 2**32 - 1))
def test_one_voice_is_never_cut(per, spread, seed):
    vectors, _ = voices(1, per, spread=spread, seed=seed)
    assert len(set(clustering.cluster(vectors))) == 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4), st.booleans()), min_size=1, max_size=10))
def test_touching_pieces_merge_only_while_their_voice_agrees(runs):
    """runs: (voice, pieces, a pause before); consecutive runs differ in voice or are apart."""
    rng = np.random.default_rng(len(runs))
    centres = unit(rng.normal(size=(3, 256)))
    vectors, spans, t, expected = [], [], 0.0, []
    for voice, count, pause in runs:
        t += 0.5 if pause or not expected else 0.0
        if expected and not pause and expected[-1][0] == voice:
            expected[-1] = (voice, expected[-1][1], t + count)
        else:
            expected.append((voice, t, t + count))
        for _ in range(count):
            vectors.append(unit(centres[voice] + 0.05 * unit(rng.normal(size=256))))
            spans.append((t, t + 1.0))
            t += 1.0
    found = embeddings.merged(embeddings.Windows(np.array(vectors, np.float32), np.array(spans)))
    assert [tuple(s) for s in found.spans.tolist()] == [(a, b) for _, a, b in expected]
    assert np.argmax(found.vectors @ centres.T, axis=1).tolist() == [v for v, _, _ in expected]
    assert np.allclose(np.linalg.norm(found.vectors, axis=1), 1.0, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.integers(8, 30), st.integers(0, 2**32 - 1))
def test_a_voice_in_one_piece_is_a_speaker_only_when_min_speakers_asks(per, seed):
    vectors, truth = voices(2, per, spread=0.5, seed=seed)
    vectors, truth = vectors[: per + 1], truth[: per + 1]  # the second voice heard once
    assert len(set(clustering.cluster(vectors))) == 1
    assert same_partition(clustering.cluster(vectors, min_speakers=2), truth)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 3), st.integers(0, 2**32 - 1))
def test_a_distinct_voice_heard_twice_is_a_speaker(per, seed):
    """A short exchange (two or three pieces of one voice, two of another, as tests/speakers' 20 s
    conversation): two pieces of a voice far from the other's are enough."""
    vectors, truth = voices(2, per, spread=0.5, seed=seed)
    vectors, truth = vectors[: per + 2], truth[: per + 2]
    assert same_partition(clustering.cluster(vectors), truth)
