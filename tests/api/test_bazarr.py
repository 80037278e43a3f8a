"""Issue 16 with requests shaped exactly like Bazarr's whisper-asr-webservice provider
(subliminal_patch/providers/whisperai.py): raw 16 kHz mono s16le PCM with encode=false, files={"audio_file":
<bytes>} (so the part's file name is "audio_file"), no Bearer header (the provider has no key setting; the key
rides in the URL as HTTP Basic), and the body saved as the .srt whatever the status."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import launch

KEY = "bazarr-test-key-0123456789"
SRT_CUE = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n([^\n]+)\n")
FILM_SECONDS = 70 * 60  # past the ~55 minutes that 100 MB of PCM used to allow


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bazarr")
    service = launch(
        checkpoint, tmp, API_KEYS=KEY, MODEL_ALIASES="whisper-1,house-model", MAX_AUDIO_SECONDS="60"
    )
    yield service
    service.stop()
    assert not service.tracebacks(), service.tracebacks()


def url_with_key(server, user: str = "whisper", key: str = KEY) -> str:
    """The endpoint as a Bazarr user writes it, credentials in the URL."""
    return server.url.replace("http://", f"http://{user}:{key}@")


def pcm(path: Path, seconds: float | None = None) -> Path:
    """The audio as Bazarr's ffmpeg call makes it: s16le, mono, 16 kHz, no header (looped to `seconds`)."""
    out = path.with_suffix(f".{seconds or 0}.pcm")
    loop = ["-stream_loop", "-1"] if seconds else []
    limit = ["-t", str(seconds)] if seconds else []
    output = ["-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", "16000", str(out)]
    ffmpeg = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    subprocess.run([*ffmpeg, *loop, "-i", str(path), *limit, *output], check=True)
    return out


def bazarr_asr(base: str, audio: bytes, **params) -> requests.Response:
    query = {"task": "transcribe", "language": "en", "output": "srt", "encode": "false", **params}
    return requests.post(base + "/asr", params=query, files={"audio_file": audio}, timeout=(10, 600))


class StreamedPart:
    """A multipart body read from disk as it is sent, with its Content-Length (no chunked encoding), so a
    film's audio never sits in the test's memory."""

    def __init__(self, path: Path, field: str, filename: str):
        self.path, self.boundary = path, uuid.uuid4().hex
        self.head = (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\n\r\n'
        ).encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()

    def __len__(self) -> int:
        return len(self.head) + self.path.stat().st_size + len(self.tail)

    def __iter__(self):
        yield self.head
        with open(self.path, "rb") as f:
            for _ in range(len(self) // (1 << 20) + 2):  # bounded: one MiB per step
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                yield chunk
        yield self.tail

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"


def cues(srt: str) -> list[tuple]:
    found = SRT_CUE.findall(srt)
    assert found and len(found) == srt.count(" --> "), srt[:500]
    return found


def end_seconds(cue: tuple) -> float:
    h, m, s, ms = cue[5:9]
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def test_pcm_with_url_credentials_gives_an_srt(server, audio_dir, tmp_path):
    resp = bazarr_asr(url_with_key(server), pcm(audio_dir / "speech.wav").read_bytes())
    assert resp.status_code == 200, resp.text
    subtitle = tmp_path / "episode.en.srt"
    subtitle.write_bytes(resp.content)  # what Bazarr does with the body
    assert cues(subtitle.read_text(encoding="utf-8"))
    assert resp.headers["Asr-Engine"] == "openai_whisper"  # whisper-asr-webservice's ASR_ENGINE spelling
    assert (
        'filename="audio_file.srt"' in resp.headers["Content-Disposition"]
    )  # requests names a bytes part after its field
    assert resp.headers["Content-Type"].count("charset") == 1


def test_detect_language_with_pcm(server, audio_dir):
    audio = pcm(audio_dir / "speech.wav").read_bytes()
    resp = requests.post(
        url_with_key(server) + "/detect-language",
        params={"encode": "false"},
        files={"audio_file": audio},
        timeout=(10, 120),
    )
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"detected_language", "language_code", "confidence"}


@pytest.mark.parametrize(
    ("url_user", "url_key", "status"),
    [("whisper", KEY, 200), (KEY, "", 401), ("whisper", "wrong-key-0123456789", 401), (None, None, 401)],
)  # the key as the user name is refused (#37): proxies log user names
def test_the_key_may_be_the_basic_password(server, audio_dir, url_user, url_key, status):
    base = server.url if url_user is None else url_with_key(server, url_user, url_key)
    resp = bazarr_asr(base, pcm(audio_dir / "speech.wav").read_bytes())
    assert resp.status_code == status, resp.text
    if status == 401:
        assert resp.json()["error"]["code"] == "invalid_api_key"


def test_bearer_still_works_and_aliases_follow_the_setting(server):
    resp = requests.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert [m["id"] for m in resp.json()["data"]] == ["test", "whisper-1", "house-model"]
    resp = requests.get(
        server.url + "/v1/models/gpt-4o-transcribe", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert resp.status_code == 404


def test_pcm_past_max_audio_seconds_is_400_naming_audio_file(server, audio_dir):
    resp = bazarr_asr(url_with_key(server), pcm(audio_dir / "speech.wav", 70).read_bytes())
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (
        "audio_file",
        "audio_too_long",
        "invalid_request_error",
    )


# -- an English-only model, and a server with small limits -------------------------------------------------
@pytest.fixture(scope="module")
def english_only(tmp_path_factory):
    """A random English-only checkpoint (tiny.en's vocabulary size) behind a tiny MAX_UPLOAD_MB and a deadline
    of one second: what passes the limits is accepted as a job, then answered 504 when the deadline passes
    first (decoding a film with random weights on a test machine's CPU would take an hour), 200 otherwise."""
    import dataclasses

    import torch
    from whisper.model import ModelDimensions, Whisper

    from tools.checkpoints import DIMS

    torch.manual_seed(0)
    dims = ModelDimensions(**{**DIMS["test"], "n_vocab": 51864})
    model = Whisper(dims)
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    path = tmp_path_factory.mktemp("model-en") / "test-en.pt"
    state = {k: v for k, v in model.state_dict().items() if k != "alignment_heads"}
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": state}, path)
    service = launch(
        path,
        path.parent,
        MAX_UPLOAD_MB="0.1",
        MAX_AUDIO_SECONDS=str(FILM_SECONDS + 600),
        REQUEST_TIMEOUT="1",
        REQUEST_TIMEOUT_PER_AUDIO_SECOND="0",
        WARMUP="false",
    )  # this branch's warmup detects a language, which English-only models cannot
    yield service
    service.stop()
    assert not service.tracebacks(), service.tracebacks()


@pytest.mark.parametrize(
    ("path", "form", "param", "code"),
    [
        ("/v1/audio/translations", {}, "model", "unsupported_task"),
        ("/v1/audio/transcriptions", {"language": "de"}, "language", "unsupported_language"),
        ("/v1/audio/translations", {"language": "de"}, "model", "unsupported_task"),
    ],
)
def test_english_only_model_refuses_what_it_cannot_do(english_only, path, form, param, code):
    resp = requests.post(english_only.url + path, data=form, timeout=30)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == param, resp.text
    assert resp.json()["error"]["code"] == code


def test_english_only_asr_refuses_translate_and_other_languages(english_only, audio_dir):
    audio = pcm(audio_dir / "speech.wav").read_bytes()
    resp = bazarr_asr(english_only.url, audio, task="translate")
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "task"
    resp = bazarr_asr(english_only.url, audio, language="de")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "unsupported_language"
    resp = bazarr_asr(english_only.url, audio)
    # English passes the language check: the job is accepted and decoded. Whether the random weights finish
    # inside the one-second deadline depends on the machine, so both outcomes of an accepted job hold here.
    assert_accepted(resp)


def assert_accepted(resp: requests.Response) -> None:
    """A request that passed every check: answered (200), or ran out of its deadline while decoding (504)."""
    if resp.status_code == 504:
        assert resp.json()["error"]["code"] == "timeout", resp.text
    else:
        assert resp.status_code == 200, resp.text[:500]


def test_a_film_is_judged_by_its_duration_not_by_max_upload_mb(english_only, audio_dir):
    """70 minutes of PCM are 134 MB, past the 100 MB default that used to refuse it (and far past this
    server's 0.1 MB): the limit that holds is MAX_AUDIO_SECONDS, and the whole film becomes one job."""
    film = pcm(audio_dir / "padded.wav", FILM_SECONDS)
    assert film.stat().st_size > 100 * 1024 * 1024
    body = StreamedPart(film, "audio_file", "audio_file")
    resp = requests.post(
        english_only.url + "/asr",
        data=body,
        timeout=(10, 300),
        params={"task": "transcribe", "language": "en", "output": "srt", "encode": "false"},
        headers={"Content-Type": body.content_type},
    )
    film.unlink()
    assert_accepted(resp)  # a job, not a 413 (a fast machine may even finish it inside the deadline)
    line = [
        json.loads(x.split(" service.request ", 1)[1])
        for x in english_only.log().splitlines()
        if " service.request " in x and '"/asr"' in x
    ][-1]
    assert line["audio_seconds"] == FILM_SECONDS


def test_encoded_upload_past_max_upload_mb_is_413_naming_audio_file(english_only, audio_dir):
    with open(audio_dir / "long.wav", "rb") as f:
        resp = requests.post(english_only.url + "/asr", files={"audio_file": f}, timeout=30)
    assert resp.status_code == 413 and resp.json()["error"]["param"] == "audio_file", resp.text
