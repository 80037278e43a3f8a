"""Which decodes a live session queues, and with which options (service/api/realtime/decoding.py).

The model is not needed to see what is queued: `Queue` stands in for the Scheduler with its real `Work`
queue, a job's windows queued as ModelLoop.enqueue_windows queues them, and the real `take_batch` as the
model loop's next call. The decodes themselves run in tests/realtime/test_live.py and bench/realtime.py.
"""

from __future__ import annotations

import json
from collections import deque
from types import SimpleNamespace

import numpy as np
import pytest

from service.api.realtime.decoding import FINAL, FIRST, Decoder, Item
from service.api.realtime.session import Session
from service.audio import SAMPLE_RATE
from service.batching.job import FALLBACK_TEMPERATURES, Job, JobOptions, Rest, with_server_defaults
from service.batching.work import ModelInput, Work, take_batch
from service.engines import engine_class
from service.intake.vad import VadParams
from service.settings import from_env
from tools import speech

SETTINGS = from_env({"VAD": "true"})


class Queue:
    """The Scheduler's queue without its model loop."""

    def __init__(self, gpu: bool = True):
        self.work = Work()
        # the facts with_server_defaults reads: an English-only model on WHISPER_ENGINE's engine class
        facts = engine_class(SETTINGS.whisper_engine)
        self.engine = SimpleNamespace(
            is_multilingual=False,
            untimed_beam_size=facts.untimed_beam_size,
            shortens_context=facts.shortens_context,
        )
        self.loop = SimpleNamespace(free_batching=gpu)  # ModelLoop.free_batching: a GPU's calls

    def submit(self, job: Job) -> None:
        with self.work.lock:
            self.work.pending[job.id] = deque(ModelInput(job, (Rest(i),)) for i in range(len(job.windows)))

    def cancel(self, job: Job, reason: str) -> None:
        with self.work.lock:
            job.cancelled = reason
            self.work.pending.pop(job.id, None)

    def model_call(self) -> list[ModelInput]:
        with self.work.lock:
            return take_batch(self.work.pending, 8, self.loop.free_batching)


@pytest.fixture(scope="module")
def sentence(tmp_path_factory):
    clip = speech.sequence(tmp_path_factory.mktemp("one"), "one", [(0.3, 0, "en-us")], total=4.0)
    return speech.read_wav(clip.path)


def speaking(queue: Queue, audio) -> Session:
    """A session whose turn began at sample 0 and holds `audio` so far (turns placed by hand: no detector)."""
    session = Session(Decoder(queue, SETTINGS, None))
    session.detector = None
    session.buffer.append(audio)
    session.speaking = Item(f"item_{id(session)}", None, 0)
    return session


def test_on_a_gpu_sessions_partial_decodes_share_one_model_call(sentence):
    """Another session's partial decode waiting does not hold one back: they go in one model call."""
    queue = Queue(gpu=True)
    sessions = [speaking(queue, sentence[: 2 * SAMPLE_RATE]) for _ in range(3)]
    for s in sessions:
        s.tick()
    partials = [s.speaking.partial for s in sessions]
    assert all(p is not None and p.live == FIRST for p in partials)  # no words sent yet: the first
    assert {i.job.id for i in queue.model_call()} == {p.id for p in partials}


def test_on_a_cpu_sessions_take_turns_with_one_partial_waiting_at_a_time(sentence):
    queue = Queue(gpu=False)
    first, second = (speaking(queue, sentence[: 2 * SAMPLE_RATE]) for _ in range(2))
    first.tick()
    second.tick()
    assert first.speaking.partial is not None and second.speaking.partial is None
    assert [i.job.id for i in queue.model_call()] == [first.speaking.partial.id]
    second.tick()  # the model took the first session's: the second's may wait now
    assert second.speaking.partial is not None


@pytest.mark.parametrize("gpu", [True, False])
def test_no_later_partial_is_queued_while_a_turns_final_decode_waits(sentence, gpu):
    """A turn with words sent waits for another turn's final decode (a turn's first words need not:
    test_context_and_line.py)."""
    queue = Queue(gpu)
    ended, talking = speaking(queue, sentence), speaking(queue, sentence[: 2 * SAMPLE_RATE])
    talking.speaking.agreement.final = ["The"]
    ended.handle(json.dumps({"type": "input_audio_buffer.commit"}))
    final = ended.decoding[0].final
    assert final.live == FINAL and final.id in queue.work.pending
    talking.tick()
    assert talking.speaking.partial is None
    assert [i.job.id for i in queue.model_call()] == [final.id]  # the model takes the final decode
    talking.tick()
    assert talking.speaking.partial is not None


@pytest.mark.parametrize("sent, step", [([], 0.3), (["The"], 0.5)])
def test_a_partial_waits_for_the_one_in_flight_and_for_its_step_of_new_audio(sentence, sent, step):
    """Half a second of new audio between two partial decodes, 0.3 s while none of the turn's words has
    been sent (its first delta needs two agreeing decodes)."""
    queue = Queue()
    session = speaking(queue, sentence[:SAMPLE_RATE])
    session.speaking.agreement.final = list(sent)
    session.tick()
    first = session.speaking.partial
    assert first is not None
    session.buffer.append(sentence[SAMPLE_RATE : 2 * SAMPLE_RATE])
    session.tick()
    assert session.speaking.partial is first  # still in flight: no second one for the item
    session.speaking.partial = None  # as when its decode is read (Session._partial_done)
    session.tick()
    second = session.speaking.partial
    assert second is not None and second is not first and second.id in queue.work.pending
    session.speaking.partial = None
    almost = 2 * SAMPLE_RATE + round((step - 0.1) * SAMPLE_RATE)
    session.buffer.append(sentence[2 * SAMPLE_RATE : almost])
    session.tick()  # 0.1 s short of the step since the second was queued: not yet
    assert session.speaking.partial is None
    session.buffer.append(sentence[almost : almost + SAMPLE_RATE // 10])
    session.tick()
    assert session.speaking.partial is not None


def test_a_server_vad_turns_decodes_are_its_audio_padded_with_silence_to_a_window(sentence):
    """A turn server_vad found is speech: no VAD, and the audio padded with silence to 30 s (not the
    engine's log-mel zeros, docs/performance.md); a partial is decoded once, a final with the fallback
    ladder."""
    queue = Queue()
    session = speaking(queue, sentence)
    session.tick()
    partial = session.speaking.partial
    assert partial.options.vad is False and partial.options.temperatures == (0.0,)  # no fallback ladder
    session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
    final = session.decoding[0].final
    for job in (partial, final):
        assert len(job.audio) == 30 * SAMPLE_RATE and [w.seconds for w in job.windows] == [30.0]
        assert np.array_equal(job.audio[: len(sentence)], sentence) and not job.audio[len(sentence) :].any()
    assert final.options.vad is False and final.options.temperatures == FALLBACK_TEMPERATURES


def test_a_buffer_the_client_commits_is_planned_as_the_same_audio_sent_as_a_file(sentence):
    """Without server_vad: same options (the server's VAD, no timestamps for a json reply) and so the same
    windows as /v1/audio/transcriptions for its audio."""
    queue = Queue()
    session = speaking(queue, sentence)
    session.speaking = None  # no turn detected: the client commits what it sent
    session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
    final = session.decoding[0].final
    as_file = with_server_defaults(JobOptions(timestamps=False), SETTINGS, queue.engine)
    assert isinstance(final.options.vad, VadParams)
    assert final.options == as_file
    assert final.windows == Job.planned(sentence, as_file, 0.0).windows


def test_a_turn_longer_than_one_window_waits_for_its_final_decode(sentence):
    """Turn detection switched off mid-turn lets the turn grow to minutes: partial decodes stop at one
    window (30 s), so a live session cannot queue 300 s decodes ahead of every file every half second."""
    queue = Queue()
    session = speaking(queue, np.resize(sentence, 29 * SAMPLE_RATE))
    session.tick()
    assert session.speaking.partial is not None
    session.speaking.partial = None
    session.buffer.append(np.resize(sentence, 2 * SAMPLE_RATE))  # 31 s of turn
    session.tick()
    assert session.speaking.partial is None and not queue.work.pending.get(session.speaking.id)
    session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
    final = session.decoding[0].final
    assert final.live == FINAL  # the whole turn is still decoded once, its silence left out by the VAD
    assert isinstance(final.options.vad, VadParams) and len(final.audio) == 31 * SAMPLE_RATE


def test_a_turn_whose_clip_holds_nothing_completes_empty_without_the_model(sentence):
    queue = Queue()
    session = speaking(queue, sentence)
    out = session._end_turn(session.speaking, session.speaking.start, server_vad=True)
    assert [e["type"] for e in out] == [
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert out[1]["transcript"] == "" and not queue.work.pending and not session.decoding
