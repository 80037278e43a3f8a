"""A diarized stream sends segments while the file is still being decoded: the speakers are found in the
audio alone, beside the decode, and each window's segments go out labelled as soon as the windows before it
are decoded, with the labels the whole file's diarized_json gives them (the real embedded model, through
the official client; one window per model call, so windows finish one after another)."""

from __future__ import annotations

import openai
import pytest
from openai.types.audio import TranscriptionTextDoneEvent, TranscriptionTextSegmentEvent

from tests.conftest import launch
from tests.speakers.test_sdk import DIARIZED
from tools import conversations


@pytest.fixture(scope="module")
def long_talk(tmp_path_factory) -> conversations.Conversation:
    """Two voices taking 16 turns: about 80 s, 3 or more windows."""
    directory = tmp_path_factory.mktemp("long-talk")
    return conversations.conversation(directory, "long-talk", conversations.SPEAKERS[:2], 16, seed=5)


@pytest.fixture(scope="module")
def one_window_a_call(tiny_en, tmp_path_factory):
    server = launch(tiny_en, tmp_path_factory.mktemp("stream"), VAD="true", BATCH_SIZE="1")
    yield server
    server.stop()
    assert not server.tracebacks(), server.tracebacks()


def test_segments_stream_before_the_last_window_is_decoded_with_the_whole_files_labels(
    one_window_a_call, long_talk
):
    url = one_window_a_call.url + "/v1"
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=300)
    with open(long_talk.path, "rb") as f:
        whole = client.audio.transcriptions.create(**DIARIZED, file=f)
    calls_for_the_file = one_window_a_call.metric("whisper_batch_size_count")
    assert calls_for_the_file >= 3  # several windows, one a call
    events, calls_at_first = [], None
    with open(long_talk.path, "rb") as f:
        for event in client.audio.transcriptions.create(**DIARIZED, stream=True, file=f):
            if calls_at_first is None:  # the model calls made so far for this request, when the first came
                calls_at_first = one_window_a_call.metric("whisper_batch_size_count") - calls_for_the_file
            events.append(event)
    calls_for_the_stream = one_window_a_call.metric("whisper_batch_size_count") - calls_for_the_file
    assert calls_at_first < calls_for_the_stream, (calls_at_first, calls_for_the_stream)
    segments, done = events[:-1], events[-1]
    assert all(isinstance(e, TranscriptionTextSegmentEvent) for e in segments)
    assert isinstance(done, TranscriptionTextDoneEvent) and done.text == whole.text
    streamed = [(e.speaker, e.start, e.end, e.text) for e in segments]
    assert streamed == [(s.speaker, s.start, s.end, s.text) for s in whole.segments]
    assert {e.speaker for e in segments} == {"A", "B"}
