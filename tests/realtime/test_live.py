"""Live transcription through the real server with OpenAI's own SDK: espeak-ng speech streamed as pcm16 at
24 kHz in 100 ms appends at real-time pace, one session and several at once (nothing here asserts latency:
bench/realtime.py measures it)."""

from __future__ import annotations

import base64
import threading

import pytest
from openai import OpenAI

from bench.realtime_client import connect, pcm24k, stream, transcription_session
from tests.realtime.conftest import KEY
from tools import speech

COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"


@pytest.fixture(scope="module")
def two_sentences(tmp_path_factory) -> speech.Clip:
    d = tmp_path_factory.mktemp("two")
    return speech.sequence(d, "two", [(0.5, 0, "en-us"), (6.5, 3, "en-gb")], total=11.5)


def as_file(service, clip: speech.Clip) -> str:
    client = OpenAI(api_key=KEY, base_url=service.url + "/v1", max_retries=0)
    with open(clip.path, "rb") as f:
        return client.audio.transcriptions.create(model="whisper-1", file=f, language="en").text


def test_each_sentence_is_a_turn_with_its_transcript(live, two_sentences):
    events = stream(live.url, speech.read_wav(two_sentences.path), api_key=KEY)
    kinds = [e["type"] for e in events.items]
    assert kinds[:2] == ["session.created", "session.updated"]
    committed = events.of("input_audio_buffer.committed")
    started, stopped = (
        events.of("input_audio_buffer.speech_started"),
        events.of("input_audio_buffer.speech_stopped"),
    )
    assert len(committed) == len(started) == len(stopped) == 2, kinds
    assert [c["item_id"] for c in committed] == [s["item_id"] for s in started]
    assert (
        committed[0]["previous_item_id"] is None
        and committed[1]["previous_item_id"] == committed[0]["item_id"]
    )
    assert (
        started[0]["audio_start_ms"]
        <= 500
        <= stopped[0]["audio_end_ms"]
        <= started[1]["audio_start_ms"]
        <= 6500
    )
    completed = events.of(COMPLETED)
    assert [c["item_id"] for c in completed] == [c["item_id"] for c in committed]
    live_text = " ".join(c["transcript"] for c in completed)
    # each turn is decoded alone, without its neighbour's context as in the file: tiny.en's per-sentence
    # errors on espeak-ng are 10-20 %; bench/realtime.py measures the gap to files over many clips
    assert speech.wer(two_sentences.text, live_text) <= 0.3, (live_text, two_sentences.text)
    assert speech.wer(two_sentences.text, as_file(live, two_sentences)) <= 0.3  # the same words as a file
    assert all(c["usage"]["type"] == "duration" and c["usage"]["seconds"] > 2 for c in completed)
    for item in completed:  # text comes as deltas first (while speaking, or at the end), completed last
        order = [e["type"] for e in events.items if e.get("item_id") == item["item_id"]]
        assert DELTA in order and order[-1] == COMPLETED, order


def test_sessions_at_once_each_get_their_own_words(live, tmp_path_factory):
    d = tmp_path_factory.mktemp("several")
    clips = [speech.clip(d, i, voice) for i, voice in ((1, "en-us"), (4, "en-gb"), (7, "en-us+f3"))]
    results: dict[int, str] = {}

    def one(i: int) -> None:
        events = stream(live.url, speech.read_wav(clips[i].path), api_key=KEY, timeout=120)
        results[i] = " ".join(c["transcript"] for c in events.of(COMPLETED))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(clips))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert sorted(results) == [0, 1, 2]
    for i, clip in enumerate(clips):
        own = speech.wer(clip.text, results[i])
        assert own <= 0.5, (results[i], clip.text)
        assert all(own < speech.wer(other.text, results[i]) for other in clips if other is not clip)


def test_a_client_commit_without_server_vad_gives_one_item_with_logprobs(live, two_sentences):
    session = transcription_session(turn_detection=None)
    session["include"] = ["item.input_audio_transcription.logprobs"]
    audio = speech.read_wav(two_sentences.path)[: 6 * 16000]
    with connect(live.url, KEY) as conn:
        conn.session.update(session=session)
        conn.input_audio_buffer.append(audio=base64.b64encode(pcm24k(audio)).decode())
        conn.input_audio_buffer.commit()
        kinds = []
        for event in conn:
            kinds.append(event.type)
            if event.type == COMPLETED:
                break
    assert "input_audio_buffer.speech_started" not in kinds and "input_audio_buffer.committed" in kinds
    assert speech.wer(speech.SENTENCES[0], event.transcript) <= 0.5
    assert event.logprobs and all(p.logprob <= 0 for p in event.logprobs)
