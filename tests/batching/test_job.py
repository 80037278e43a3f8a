"""How a job turns decoded inputs into segments, and packs the rests of windows into shared inputs.

The model's decisions (where it stops, what segments it returns) are given here as WindowResults, so that
each rule can be driven exactly; the real model's behaviour on long files is checked end to end in
tests/speech (accuracy, timestamps, order). Windows here are one contiguous span of the file each.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from service.batching.job import Job, JobOptions
from service.batching.placement import Rest
from service.batching.scheduler import Scheduler
from service.batching.work import take_batch
from service.engines.base import WindowResult
from service.engines.openai_whisper import OpenAIWhisperEngine
from service.intake.vad import Region, VadParams
from service.intake.windows import Window
from service.settings import Settings
from service.transcript import Segment, Word

SR = 16000


def job(*windows: tuple[float, float]) -> Job:
    """A job over 200 s of audio whose windows are the given (start, end) seconds, all of it speech."""
    planned = [Window((Region(round(a * SR), round(b * SR)),)) for a, b in windows]
    audio = np.zeros(200 * SR, dtype=np.float32)
    return Job(
        audio=audio,
        options=JobOptions(language="en"),
        deadline=time.monotonic() + 60,
        windows=planned,
        speech=[Region(0, len(audio))],
    )


def result(consumed: float, *segments: tuple) -> WindowResult:
    """(start, end, text) or (start, end, text, words) per segment."""
    return WindowResult(
        segments=tuple(Segment(a, b, text, (), *words) for a, b, text, *words in segments),
        text="",
        temperature=0.0,
        avg_logprob=-0.2,
        compression_ratio=1.5,
        no_speech_prob=0.01,
        consumed=consumed,
    )


def empty(no_speech_prob: float, consumed: float) -> WindowResult:
    """A decode with no text: silence when no_speech_prob is high (its log-probability is low)."""
    return WindowResult(
        segments=(),
        text="",
        temperature=0.0,
        avg_logprob=-1.5,
        compression_ratio=1.0,
        no_speech_prob=no_speech_prob,
        consumed=consumed,
    )


def times(segments) -> list[tuple[float, float, str]]:
    return [(round(s.start, 2), round(s.end, 2), s.text) for s in segments]


def test_a_window_the_model_stopped_early_in_leaves_its_rest():
    j = job((0, 30))
    j.deliver((Rest(0),), result(25.0, (0, 12, "a"), (12, 25, "b")))
    assert j.rests == [Rest(0, 25.0)] and not j.complete[0]
    assert times(j.segments[0]) == [(0, 12, "a"), (12, 25, "b")]


def test_rests_are_packed_in_window_order_into_inputs_of_at_most_30_s():
    j = job((0, 30), (30, 60), (60, 90), (90, 120))
    for window, stop in [(2, 19.0), (0, 22.0), (1, 18.0), (3, 27.0)]:  # rests of 11, 8, 12 and 3 s
        j.deliver((Rest(window),), result(stop, (0, stop, f"w{window}")))
    assert j.rests_seconds() == pytest.approx(34.0)
    inputs = j.pack()  # 8 + 12 + 11 s would be 31 s
    assert inputs == [(Rest(0, 22.0), Rest(1, 18.0)), (Rest(2, 19.0), Rest(3, 27.0))]
    assert j.rests == []
    assert len(j.input_audio(inputs[0])) == 20 * SR  # 8 s of window 0, then 12 s of window 1


def test_a_packed_input_gives_each_window_its_own_text_at_file_times():
    j = job((0, 30), (30, 60))
    j.deliver((Rest(0),), result(22.0, (0, 22, "first")))
    j.deliver((Rest(1),), result(20.0, (0, 20, "second")))
    (packed,) = j.pack()  # 8 s of window 0 (file 22-30 s), then 10 s of window 1 (file 50-60 s)
    j.deliver(packed, result(18.0, (0.0, 7.9, " rest of 0"), (8.2, 18.0, " rest of 1")))
    assert times(j.segments[0]) == [(0, 22, "first"), (22, 29.9, " rest of 0")]
    assert times(j.segments[1]) == [(30, 50, "second"), (50.2, 60, " rest of 1")]
    assert all(j.complete) and j.rests == []
    assert [e for e in iter(j.events.get_nowait, ("window", 1))] == [("window", 0)]  # announced in order


def test_a_segment_that_runs_from_one_rest_into_the_next_is_decoded_again():
    """Its text holds words of two windows and cannot be placed: the input counts as covered up to its
    start, so window 0 keeps what came before it and both rests go back to be decoded again."""
    j = job((0, 30), (30, 60))
    j.deliver((Rest(0),), result(22.0, (0, 22, "first")))
    j.deliver((Rest(1),), result(20.0, (0, 20, "second")))
    (packed,) = j.pack()
    j.deliver(packed, result(18.0, (0.0, 4.0, " a"), (4.0, 12.0, " across"), (12.0, 18.0, " b")))
    assert times(j.segments[0])[-1] == (22, 26, " a")
    assert times(j.segments[1]) == [(30, 50, "second")]  # nothing of the input reached window 1
    assert j.rests == [Rest(0, 26.0), Rest(1, 20.0)]


def test_a_segment_may_end_a_little_past_the_seam_and_is_kept_within_its_window():
    j = job((0, 30), (30, 60))
    j.deliver((Rest(0),), result(22.0, (0, 22, "first")))
    j.deliver((Rest(1),), result(20.0, (0, 20, "second")))
    (packed,) = j.pack()
    j.deliver(packed, result(18.0, (0.0, 8.3, " a"), (8.3, 18.0, " b")))  # stamps are coarse: 0.3 s over
    assert times(j.segments[0])[-1] == (22, 30, " a")
    assert times(j.segments[1])[-1] == (50.3, 60, " b")


def test_a_rest_without_progress_in_a_packed_input_is_decoded_alone_before_it_can_end():
    """Packed, a rest that made no progress goes back alone (a later rest not reached keeps its place);
    only alone does no progress end a window, as transcribe() ends it. Packing never drops speech."""
    j = job((0, 30), (30, 60))
    j.deliver((Rest(0),), result(22.0, (0, 22, "first")))
    j.deliver((Rest(1),), result(20.0, (0, 20, "second")))
    (packed,) = j.pack()
    j.deliver(packed, result(0.5, (0.0, 0.5, " uh")))  # stopped after 0.5 s: less than MIN_PROGRESS
    assert j.complete == [False, False]
    assert j.rests == [Rest(0, 22.5, alone=True), Rest(1, 20.0)]
    alone, rest = j.pack()
    assert alone == (Rest(0, 22.5, alone=True),) and rest == (Rest(1, 20.0),)
    j.deliver(alone, result(0.4, (0.0, 0.4, " uh")))
    assert j.complete == [True, False] and j.rests == []


def test_a_first_segment_running_into_the_next_rest_loses_nothing():
    """The model ran the first rest's sentence on into the second rest: nothing can be placed, and the
    first rest is decoded again alone rather than given up."""
    j = job((0, 30), (30, 60))
    j.deliver((Rest(0),), result(26.5, (0, 26.5, "first")))
    j.deliver((Rest(1),), result(26.5, (0, 26.5, "second")))
    (packed,) = j.pack()  # 3.5 s + 3.5 s
    j.deliver(packed, result(7.0, (0.0, 5.4, " runs on"), (5.4, 7.0, " b")))
    assert j.complete == [False, False]
    assert j.rests == [Rest(0, 26.5, alone=True), Rest(1, 26.5)]


def test_a_rest_with_no_speech_left_is_not_decoded_again():
    j = job((0, 30))
    j.speech = [Region(0, 25 * SR + SR // 2)]  # VAD hears speech until 25.5 s
    j.deliver((Rest(0),), result(25.0, (0, 25, "a")))
    assert j.complete == [True] and j.rests == []


@pytest.mark.parametrize("verdict", ["silent", "no text"])
def test_one_verdict_on_a_packed_input_does_not_end_the_rests_after_the_first(verdict):
    """A packed input judged silent, or decoded to nothing, says nothing of each rest in it: the first rest is
    judged alone next, the others keep their place (before packing, each rest was judged on its own)."""
    j = job((0, 30), (30, 60))
    j.deliver((Rest(0),), result(22.0, (0, 22, "first")))
    j.deliver((Rest(1),), result(20.0, (0, 20, "second")))
    (packed,) = j.pack()
    no_speech = 0.9 if verdict == "silent" else 0.01
    j.deliver(packed, empty(no_speech, 18.0))
    assert j.complete == [False, False]
    assert j.rests == [Rest(0, 22.0, alone=True), Rest(1, 20.0)]
    alone, rest = j.pack()
    j.deliver(alone, empty(0.9, 8.0))
    assert j.complete == [True, False] and rest == (Rest(1, 20.0),)  # alone, silence ends the window


def test_word_alignment_ending_a_segment_early_does_not_end_the_window():
    """With word timestamps a segment ends at its last word, before the decode's last timestamp: what was
    decoded is measured by the timestamp, so the rest of the window is still decoded."""
    j = job((0, 30))
    words = (Word(" Okay.", 0.2, 0.9, 0.9),)
    j.deliver((Rest(0),), result(1.4, (0.0, 0.9, " Okay.", words)))
    assert j.rests == [Rest(0, 1.4)] and not j.complete[0]


def test_a_word_in_the_slack_past_a_seam_stays_in_its_window():
    j = job((0, 30), (30, 60))
    j.deliver((Rest(0),), result(22.0, (0, 22, "first")))
    j.deliver((Rest(1),), result(20.0, (0, 20, "second")))
    (packed,) = j.pack()  # window 0's rest is 8 s: a word from 8.06 s runs past the seam
    words = (Word(" a", 0.0, 4.0, 0.9), Word(" b", 8.06, 8.3, 0.9))
    j.deliver(packed, result(8.3, (0.0, 8.3, " a b", words)))
    (segment,) = j.segments[0][1:]
    assert [(w.start, w.end) for w in segment.words] == [(22.0, 26.0), (30.0, 30.0)]
    assert (segment.start, segment.end) == (22.0, 30.0)


@pytest.mark.parametrize("streamed", [False, True])
def test_rests_wait_to_fill_a_window_unless_the_request_streams(streamed):
    """A request that reads its answer at the end gives its rests time to fill a shared input; a streamed one
    has each window sent only once its rest is decoded, so its rests are queued at once."""
    settings = Settings(whisper_model="tiny.en", batch_size=2)
    scheduler = Scheduler(OpenAIWhisperEngine(settings), settings)  # not loaded
    j = job((0, 30), (30, 60), (60, 90))
    j.options = JobOptions(language="en", streamed=streamed)
    loop = scheduler.loop
    loop.enqueue_windows(j)
    batch = take_batch(scheduler.work.pending, loop.batch_size)  # windows 0 and 1; window 2 is still queued
    if streamed:  # a streamed request's first model call takes its first window alone (work.take_batch)
        assert [model_input.rests for model_input in batch] == [(Rest(0),)]
        batch += take_batch(scheduler.work.pending, loop.batch_size)
    for model_input, stop in zip(batch, (22.0, 20.0)):
        loop._deliver(model_input, result(stop, (0, stop, "text")))
    loop._queue_rests(j)
    queued = [model_input.rests for model_input in scheduler.work.pending.get(j.id, ())]
    if streamed:
        assert queued[0] == (Rest(0, 22.0), Rest(1, 20.0)) and j.rests == []
    else:
        assert all(len(rests) == 1 and rests[0].offset == 0 for rests in queued)
        assert j.rests == [Rest(0, 22.0), Rest(1, 20.0)]  # 18 s: less than a window, held back


def test_a_decode_that_ends_early_leaves_the_rest_to_the_speech_map():
    """Issue 27: the silence after a window's last sentence, decoded again, got invented words (' you');
    issue 30: a sentence 18 s after the model's end of text in the same window was lost. The model's end
    decides neither: the speech map does (VAD's, also made without VAD), and a rest decoded again starts just
    before its first speech."""
    ended = replace(result(9.44, (4.5, 9.4, " The weather forecast.")), ended=True)
    for vad in (False, VadParams(0.5, 500, 400)):
        silent_after = job((0, 24))
        silent_after.options = replace(silent_after.options, vad=vad)
        silent_after.speech = [Region(round(4.5 * SR), round(9.5 * SR))]
        silent_after.deliver((Rest(0),), ended)
        assert silent_after.complete == [True] and silent_after.rests == []
        spoken_after = job((0, 24))
        spoken_after.options = replace(spoken_after.options, vad=vad)
        spoken_after.speech = [Region(round(4.5 * SR), round(9.4 * SR)), Region(20 * SR, 22 * SR)]
        spoken_after.deliver((Rest(0),), ended)
        assert spoken_after.complete == [False] and spoken_after.rests == [Rest(0, pytest.approx(19.6))]


def test_an_end_of_text_in_a_packed_input_leaves_the_rests_not_reached():
    j = job((0, 30), (30, 60))
    j.deliver((Rest(0),), result(22.0, (0, 22, "first")))
    j.deliver((Rest(1),), result(20.0, (0, 20, "second")))
    (packed,) = j.pack()  # 8 s of window 0, then 10 s of window 1
    j.deliver(packed, replace(result(5.0, (0.5, 5.0, " end of 0")), ended=True))
    assert j.complete == [False, False] and j.rests == [Rest(0, 27.0), Rest(1, 20.0)]  # all of it is speech
