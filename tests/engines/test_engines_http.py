"""Both engines through the real server: same endpoints, shapes, and text for the same greedy request."""

from __future__ import annotations

import openai
import pytest
import requests

from tools.convert import convert

ENDPOINT = "/v1/audio/transcriptions"
GREEDY = {
    "language": "en",
    "temperature": "0",
    "compression_ratio_threshold": "100",
    "logprob_threshold": "-100",
}


@pytest.fixture(scope="module")
def ct2_model(checkpoint, tmp_path_factory):
    """The session's checkpoint converted offline, float32 so both engines run the very same weights."""
    return convert(
        checkpoint, tmp_path_factory.mktemp("ct2") / "test-ct2", quantization="float32"
    ).destination


@pytest.fixture(scope="module")
def faster(ct2_model, tmp_path_factory):
    from tests.conftest import launch

    tmp = tmp_path_factory.mktemp("faster")
    server = launch(ct2_model, tmp, WHISPER_ENGINE="faster-whisper", WHISPER_COMPUTE_TYPE="float32")
    yield server
    server.stop()
    assert not server.tracebacks(), server.tracebacks()


def post(server, path, data):
    with open(path, "rb") as f:
        resp = requests.post(server.url + ENDPOINT, files={"file": f}, data=data, timeout=180)
    assert resp.status_code == 200, resp.text
    return resp


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt", "verbose_json"])
def test_every_format_through_the_openai_client(faster, audio_dir, fmt):
    client = openai.OpenAI(base_url=faster.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    with open(audio_dir / "speech.mp3", "rb") as f:
        result = client.audio.transcriptions.create(model="whisper-1", file=f, response_format=fmt)
    text = result if isinstance(result, str) else result.text
    assert text.strip()
    if fmt == "srt":
        assert result.startswith("1\n00:00:")
    if fmt == "vtt":
        assert result.startswith("WEBVTT")
    if fmt == "verbose_json":
        assert result.segments and result.duration > 0


def test_translation_and_streaming(faster, audio_dir):
    client = openai.OpenAI(base_url=faster.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    with open(audio_dir / "speech.ogg", "rb") as f:
        assert isinstance(client.audio.translations.create(model="whisper-1", file=f).text, str)
    with open(audio_dir / "long.wav", "rb") as f:
        events = list(client.audio.transcriptions.create(model="whisper-1", file=f, stream=True))
    assert events[-1].type == "transcript.text.done" and len(events) >= 4


def test_same_request_same_structure_and_text_from_both_engines(service, faster, audio_dir):
    data = {**GREEDY, "response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]}
    reference = post(service, audio_dir / "long.wav", data).json()
    other = post(faster, audio_dir / "long.wav", data).json()
    assert set(reference) == set(other)
    assert [set(s) for s in reference["segments"]] == [set(s) for s in other["segments"]]
    assert [set(w) for w in reference["words"]] == [set(w) for w in other["words"]]
    # float32 weights, greedy, no fallback: the engines agree token for token
    assert [s["tokens"] for s in reference["segments"]] == [s["tokens"] for s in other["segments"]]
    assert reference["text"] == other["text"]
    assert [(s["start"], s["end"]) for s in reference["segments"]] == [
        (s["start"], s["end"]) for s in other["segments"]
    ]


def test_queue_and_metrics_carry_the_engine(faster, audio_dir):
    post(faster, audio_dir / "speech.wav", GREEDY)
    assert faster.metric("whisper_build_info", engine="faster-whisper", precision="float32") == 1
    assert faster.metric("whisper_requests_total", engine="faster-whisper", status="200") >= 1
    assert faster.metric("whisper_batch_size_count", engine="faster-whisper") >= 1
    ready = requests.get(faster.url + "/readyz").json()
    assert ready["engine"] == "faster-whisper"
