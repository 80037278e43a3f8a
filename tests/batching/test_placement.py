"""placement.py's pure rules on their own: which rest a segment belongs to, what a decode leaves, packing."""

from __future__ import annotations

import pytest

from service.batching.placement import (
    MIN_PROGRESS_SECONDS,
    SEAM_SLACK_SECONDS,
    Rest,
    owner,
    pack,
    place,
    settle,
)
from service.transcript import Segment, Word

BOUNDS = [0.0, 8.0, 18.0]  # an input of two rests: 8 s of one window, then 10 s of another
RESTS = (Rest(0, 22.0), Rest(1, 20.0))


def segment(start: float, end: float, text: str = "x") -> Segment:
    return Segment(start, end, text, ())


def always(rest: Rest) -> bool:
    return True


@pytest.mark.parametrize(
    ("start", "end", "index"),
    [
        (0.0, 7.9, 0),
        (8.2, 18.0, 1),
        (6.0, 11.0, 1),
        (5.0, 9.0, 0),
        (8.0, 8.0, 1),
        (18.0, 18.0, 1),
        (-1, -1, 0),
    ],
)
def test_a_segment_belongs_to_the_rest_it_overlaps_most(start, end, index):
    assert owner(BOUNDS, start, end) == index


def test_a_segment_across_a_seam_stops_the_placement_there():
    segments = [segment(0.0, 4.0), segment(4.0, 12.0), segment(12.0, 18.0)]
    placed, cut, reach = place(BOUNDS, segments, consumed=18.0)
    assert placed == [(0, segments[0])] and cut == 4.0 and reach == [4.0, 8.0]


def test_a_segment_within_the_slack_of_a_seam_is_placed():
    segments = [segment(0.0, 8.0 + SEAM_SLACK_SECONDS - 0.1), segment(8.3, 18.0)]
    placed, cut, _ = place(BOUNDS, segments, consumed=18.0)
    assert [index for index, _ in placed] == [0, 1] and cut == 18.0


def test_a_decode_that_covers_the_input_completes_every_window():
    settled = settle(RESTS, BOUNDS, [segment(0, 7.9), segment(8.2, 18.0)], 18.0, False, always)
    assert settled.complete == [0, 1] and settled.rests == []


def test_a_rest_the_decode_did_not_reach_keeps_its_place():
    settled = settle(RESTS, BOUNDS, [segment(0, 6.0)], 6.0, False, always)
    assert settled.complete == [] and settled.rests == [Rest(0, 28.0), Rest(1, 20.0)]


def test_no_progress_while_packed_means_alone_next_and_alone_it_is_final():
    stalled = [segment(0.0, MIN_PROGRESS_SECONDS / 2)]
    packed = settle(RESTS, BOUNDS, stalled, MIN_PROGRESS_SECONDS / 2, False, always)
    assert packed.rests == [Rest(0, 22.5, alone=True), Rest(1, 20.0)]
    alone = settle((Rest(0, 22.5, alone=True),), [0.0, 7.5], stalled, MIN_PROGRESS_SECONDS / 2, False, always)
    assert alone.complete == [0] and alone.rests == []


def test_without_speech_left_a_rest_is_complete():
    settled = settle(RESTS, BOUNDS, [segment(0, 6.0)], 6.0, False, lambda rest: rest.window == 1)
    assert settled.complete == [0] and settled.rests == [Rest(1, 20.0)]


@pytest.mark.parametrize("silent", [True, False])
def test_one_verdict_on_a_packed_input_sends_the_first_rest_alone(silent):
    settled = settle(RESTS, BOUNDS, [], 18.0, silent, always)
    assert settled.rests == [Rest(0, 22.0, alone=True), Rest(1, 20.0)] and settled.complete == []
    assert settle(RESTS[:1], BOUNDS[:2], [], 8.0, True, always).complete == [0]  # alone: silence ends it


def test_pack_fills_inputs_in_window_order_up_to_30_s_and_keeps_lone_rests_alone():
    lengths = {0: 8.0, 1: 12.0, 2: 11.0, 3: 3.0, 4: 2.0}
    rests = [Rest(2), Rest(0), Rest(1), Rest(3, alone=True), Rest(4)]
    inputs = pack(rests, lambda rest: lengths[rest.window])
    assert inputs == [(Rest(0), Rest(1)), (Rest(2),), (Rest(3, alone=True),), (Rest(4),)]


def test_a_segment_goes_where_its_words_are_not_where_its_timestamps_say():
    """Issue 27: after 8 s of silence the model stamped a sentence at the input's start, word alignment put
    its words in the next rest, and they were clamped to the seam (all at one file time, 20 s early)."""
    words = tuple(Word(w, t, t + 0.4, 0.9) for w, t in ((" She", 9.0), (" opened", 9.5), (" it.", 10.0)))
    stamped_early = Segment(0.0, 3.0, " She opened it.", (), words)
    placed, cut, _ = place(BOUNDS, [stamped_early], consumed=18.0)
    assert placed == [] and cut == 0.0  # straddles the seam: decoded again, never put in the wrong rest
    where_said = Segment(9.0, 10.4, " She opened it.", (), words)
    assert place(BOUNDS, [where_said], consumed=18.0)[0] == [(1, where_said)]
