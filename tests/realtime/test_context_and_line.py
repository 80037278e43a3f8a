"""A turn's decodes carry the session's earlier text as their prompt (REALTIME_CONTEXT_CHARS), bounded; on a
CPU a turn's first words go before other turns' later words, and waiting sessions take turns fairly
(service/api/realtime/decoding.py). The queue is the real `Work` with the real `take_batch` as the model's
next call (tests/realtime/test_partials.py's Queue); a final decode's result is delivered to the real Job
as the model loop delivers one, so the session reads its text as it reads the model's."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.realtime.decoding import FINAL, FIRST, PARTIAL, Decoder, Item, context_tail
from service.api.realtime.session import Session
from service.audio import SAMPLE_RATE
from service.batching.placement import Rest
from service.batching.work import overdue
from service.engines.base import WindowResult
from service.settings import from_env
from service.transcript import Segment
from tools import speech

from .test_partials import Queue, speaking

WORD = st.text(st.characters(whitelist_categories=("L", "N", "P")), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def sentence(tmp_path_factory):
    clip = speech.sequence(tmp_path_factory.mktemp("one"), "one", [(0.3, 0, "en-us")], total=4.0)
    return speech.read_wav(clip.path)


def decoded(job, text: str) -> None:
    """The model's result for each of the job's windows, delivered as the model loop delivers it."""
    for i, window in enumerate(job.windows):
        words = text if i == 0 else ""
        segment = Segment(0.0, window.seconds, words, ())
        result = WindowResult((segment,), words, 0.0, -0.1, 1.2, 0.01, window.seconds, ended=True)
        job.deliver((Rest(i),), result)
    job.done.set()


def turn(session: Session, audio, text: str) -> list[dict]:
    """One turn of `audio`, committed by the client, taken by the model and read as `text`."""
    session.buffer.append(audio)
    session.speaking = Item(f"item_{session.buffer.end}", None, session.buffer.end - len(audio))
    session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
    assert [i.job for i in session.decoder.scheduler.model_call()] == [session.decoding[0].final]
    decoded(session.decoding[0].final, text)
    return session.tick()


@given(words=st.lists(WORD, max_size=60), chars=st.integers(0, 300))
@settings(max_examples=300, deadline=None)
def test_the_context_is_the_texts_end_in_whole_words_and_bounded(words, chars):
    text = " ".join(words)
    tail = context_tail(text, chars)
    assert len(tail) <= chars
    assert text.endswith(tail)
    assert tail == "" or tail.split() == text.split()[-len(tail.split()) :]  # whole words only
    if len(text.strip()) <= chars:
        assert tail == text.strip()


def with_context(queue: Queue, chars: int = 200) -> Session:
    session = Session(Decoder(queue, from_env({"REALTIME_CONTEXT_CHARS": str(chars)}), None))
    session.detector = None  # turns placed by hand
    return session


def test_a_turns_decodes_are_prompted_with_the_previous_turns_text_after_the_sessions_prompt(sentence):
    queue = Queue()
    session = with_context(queue)
    session.config = session.config.updated(
        {"audio": {"input": {"transcription": {"model": "whisper-1", "prompt": "Glossary: Zyx."}}}}
    )
    first = turn(session, sentence, "The weather is fine.")
    assert first[-1]["transcript"] == "The weather is fine."
    session.buffer.append(sentence[: 2 * SAMPLE_RATE])
    session.speaking = Item("item_next", None, session.buffer.end - 2 * SAMPLE_RATE)
    session.tick()
    assert session.speaking.partial.options.prompt == "Glossary: Zyx. The weather is fine."
    session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
    assert session.decoding[0].final.options.prompt == "Glossary: Zyx. The weather is fine."


def test_the_context_keeps_only_the_last_characters_and_zero_turns_it_off(sentence):
    """Zero (the default) prompts with the session's prompt only, as each turn was decoded before."""
    texts = [f"Sentence number {i} is here." for i in range(20)]
    for chars in (0, 60):
        session = with_context(Queue(), chars)
        for text in texts:
            turn(session, sentence, text)
        session.buffer.append(sentence)
        session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
        prompt = session.decoding[0].final.options.prompt
        if chars == 0:
            assert prompt is None and from_env({}).realtime_context_chars == 0
        else:
            assert prompt == "Sentence number 18 is here. Sentence number 19 is here."
            assert len(prompt) <= chars


def test_words_already_sent_of_a_turn_still_decoding_are_context_too(sentence):
    session = with_context(Queue())
    session.buffer.append(sentence)
    session.speaking = Item("item_first", None, 0)
    session.speaking.agreement.update("The weather is")
    session.speaking.agreement.update("The weather is fine")  # "The weather is" sent
    session.handle(json.dumps({"type": "input_audio_buffer.commit"}))  # its final decode waits
    session.buffer.append(sentence[: 2 * SAMPLE_RATE])
    session.speaking = Item("item_next", None, session.buffer.end - 2 * SAMPLE_RATE)
    assert session.context() == "The weather is"


def test_on_a_cpu_a_turns_first_words_queue_beside_a_later_partial_and_go_first(sentence):
    queue = Queue(gpu=False)
    talking, starting = (speaking(queue, sentence[: 2 * SAMPLE_RATE]) for _ in range(2))
    talking.speaking.agreement.final = ["The"]  # words sent: its next partial is a later one
    talking.tick()
    assert talking.speaking.partial.live == PARTIAL
    starting.tick()
    assert starting.speaking.partial is not None and starting.speaking.partial.live == FIRST
    assert [i.job.id for i in queue.model_call()] == [starting.speaking.partial.id]


def test_on_a_cpu_a_later_partial_waits_while_a_turns_first_words_wait(sentence):
    queue = Queue(gpu=False)
    starting, talking = (speaking(queue, sentence[: 2 * SAMPLE_RATE]) for _ in range(2))
    talking.speaking.agreement.final = ["The"]
    starting.tick()
    talking.tick()
    assert starting.speaking.partial.live == FIRST and talking.speaking.partial is None
    queue.model_call()
    talking.tick()
    assert talking.speaking.partial is not None


def test_on_a_cpu_sessions_waiting_for_a_partial_go_oldest_decode_first(sentence):
    """Three sessions whose turns have words sent want a partial while one waits for the model: when the
    model takes it, the one whose last decode is oldest goes next, whatever order the sessions tick in."""
    queue = Queue(gpu=False)
    busy, *waiting = (speaking(queue, sentence[: 2 * SAMPLE_RATE]) for _ in range(4))
    for rank, session in enumerate([busy, *waiting]):
        session.speaking.agreement.final = ["The"]
        session.speaking.partial_sent = 100.0 + rank
    busy.tick()
    waiting[0].speaking.partial_sent = 104.0  # the newest: it goes last
    for session in waiting:
        session.tick()
    assert all(s.speaking.partial is None for s in waiting)
    order = []
    for _ in waiting:
        queue.model_call()
        for session in reversed(waiting):  # the order they tick in does not matter
            if session.speaking.partial is None:
                session.tick()
                if session.speaking.partial is not None:
                    order.append(session)
    assert order == [waiting[1], waiting[2], waiting[0]]


def test_on_a_cpu_a_turns_first_words_go_before_a_final_decode_and_later_words_after_it(sentence):
    queue = Queue(gpu=False)
    ended, starting, talking = (
        speaking(queue, sentence),
        *(speaking(queue, sentence[:SAMPLE_RATE]) for _ in "ab"),
    )
    talking.speaking.agreement.final = ["The"]
    ended.handle(json.dumps({"type": "input_audio_buffer.commit"}))
    starting.tick()
    talking.tick()
    assert starting.speaking.partial.live == FIRST and talking.speaking.partial is None
    calls = [queue.model_call()[0].job for _ in range(2)]
    assert calls == [starting.speaking.partial, ended.decoding[0].final]
    talking.tick()
    assert talking.speaking.partial.live == PARTIAL


@given(
    kinds=st.lists(st.sampled_from(["ended", "starting", "talking"]), min_size=1, max_size=7),
    seed=st.randoms(),
)
@settings(max_examples=60, deadline=None)
def test_on_a_cpu_each_call_takes_the_most_urgent_live_decode_and_few_wait(sentence, kinds, seed):
    """Sessions in any mix of states, ticking in any order before each model call: each call on a CPU takes
    one live decode, of the most urgent level waiting (a turn's first words, then a final decode, then later
    words) unless one has been passed over as many calls as it may be (then that one), and never more than one
    first-words and one later partial wait at once, so a decode that becomes due waits for the call in flight
    and those few; every session's decode is served."""
    queue = Queue(gpu=False)
    sessions = [speaking(queue, sentence if kind == "ended" else sentence[:SAMPLE_RATE]) for kind in kinds]
    for kind, session in zip(kinds, sessions, strict=True):
        if kind == "talking":
            session.speaking.agreement.final = ["The"]
        elif kind == "ended":
            session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
    served = []
    for _ in range(len(kinds) + 1):
        seed.shuffle(sessions)
        for session in sessions:
            session.tick()
        with queue.work.lock:
            waiting = [inputs[0].job for inputs in queue.work.pending.values()]
        levels = [job.live for job in waiting]
        assert levels.count(FIRST) <= 1 and levels.count(PARTIAL) <= 1, levels
        if not waiting:
            break
        late = [job for job in waiting if overdue(job)]
        (taken,) = [i.job for i in queue.model_call()]
        assert taken in late if late else taken.live == max(levels), (levels, taken.live)
        served.append(taken.live)
    expected = {FIRST: kinds.count("starting"), FINAL: kinds.count("ended"), PARTIAL: kinds.count("talking")}
    assert sorted(served) == sorted(level for level, n in expected.items() for _ in range(n))


def test_on_a_cpu_turns_first_words_delay_a_final_decode_by_one_call_at_most(sentence):
    """However many turns are starting, a final decode waits for one call of their first words at most."""
    queue = Queue(gpu=False)
    ended, *starting = speaking(queue, sentence), *(speaking(queue, sentence[:SAMPLE_RATE]) for _ in "abc")
    ended.handle(json.dumps({"type": "input_audio_buffer.commit"}))
    calls = []
    for _ in range(4):
        for session in starting:
            session.tick()
        calls.append(queue.model_call()[0].job)
    assert calls[0].live == FIRST and calls[1] is ended.decoding[0].final
    assert [job.live for job in calls[2:]] == [FIRST, FIRST]


def test_a_session_that_closes_while_waiting_in_line_holds_nobody_back(sentence):
    queue = Queue(gpu=False)
    busy, gone, next_ = (speaking(queue, sentence[: 2 * SAMPLE_RATE]) for _ in range(3))
    for rank, session in enumerate([busy, gone, next_]):
        session.speaking.agreement.final = ["The"]
        session.speaking.partial_sent = 100.0 + rank
    busy.tick()
    gone.tick()
    next_.tick()  # behind `gone`, whose last decode is older
    queue.model_call()
    gone.close()
    next_.tick()
    assert next_.speaking.partial is not None
