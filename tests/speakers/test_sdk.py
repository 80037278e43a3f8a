"""Issue 33's acceptance through the official `openai` client on the real embedded model: diarized_json
parses as TranscriptionDiarized with the speakers who spoke, the stream parses as the client's events, and
known speakers are named by their voices."""

from __future__ import annotations

import base64

import openai
import pytest
from openai.types.audio import (
    TranscriptionDiarized,
    TranscriptionTextDoneEvent,
    TranscriptionTextSegmentEvent,
)

from tests.api.contract import check_type
from tools import conversations, speech


@pytest.fixture(scope="module")
def client(diarizing_service):
    return openai.OpenAI(base_url=diarizing_service.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def reference_speaker(segment_start: float, segment_end: float, conversation) -> str:
    """The reference speaker who talks most within [start, end]."""
    overlap = {}
    for start, end, who in conversation.turns:
        overlap[who] = overlap.get(who, 0.0) + max(0.0, min(end, segment_end) - max(start, segment_start))
    return max(overlap, key=overlap.get)


# the call issue #33 names: OpenAI's diarizing model, its format, and the chunking it requires over 30 s
DIARIZED = {
    "model": "gpt-4o-transcribe-diarize",
    "response_format": "diarized_json",
    "chunking_strategy": "auto",
}


def test_diarized_json_names_who_spoke_when(client, two_voices):
    with open(two_voices.path, "rb") as f:
        result = client.audio.transcriptions.create(**DIARIZED, file=f)
    assert isinstance(result, TranscriptionDiarized)
    check_type(TranscriptionDiarized, result.model_dump())
    assert [s.speaker for s in result.segments][0] == "A"
    assert {s.speaker for s in result.segments} == {"A", "B"}
    # the letters are given in order of first speech: the reference's A and B are the same people
    for segment in result.segments:
        assert segment.speaker == reference_speaker(segment.start, segment.end, two_voices), segment
    assert speech.wer(two_voices.text, result.text) < 0.35


def test_the_stream_sends_segments_then_done(client, two_voices):
    with open(two_voices.path, "rb") as f:
        stream = client.audio.transcriptions.create(**DIARIZED, stream=True, file=f)
        events = list(stream)
    segments, done = events[:-1], events[-1]
    assert segments and all(isinstance(e, TranscriptionTextSegmentEvent) for e in segments)
    assert isinstance(done, TranscriptionTextDoneEvent)
    assert {e.speaker for e in segments} == {"A", "B"}
    assert done.text == " ".join(e.text for e in segments)


def test_known_speakers_are_named_by_their_voices(client, two_voices, tmp_path):
    """References in each voice, saying other sentences: the names land on the right turns."""
    names = {"A": "alice", "B": "bob"}
    references = []
    for label, (voice, pitch) in zip("AB", conversations.SPEAKERS[:2]):
        clip = conversations.say(tmp_path, speech.SENTENCES[20 + len(references)], voice, pitch)
        path = speech.write_wav(tmp_path / f"{label}.wav", clip)
        references.append("data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode())
    with open(two_voices.path, "rb") as f:
        result = client.audio.transcriptions.create(
            **DIARIZED,
            file=f,
            extra_body={
                "known_speaker_names": ["bob", "alice"],
                "known_speaker_references": references[::-1],
            },
        )
    for segment in result.segments:
        assert segment.speaker == names[reference_speaker(segment.start, segment.end, two_voices)], segment
