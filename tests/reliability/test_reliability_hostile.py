"""Hostile uploads against the real server: each is refused with a 4xx in the error shape, fast, and the
service stays ready. Includes 100 MB of zeros (streamed); decompression bombs: test_reliability_bombs.py."""

from __future__ import annotations

import struct

import pytest
import requests
from reliability_helpers import assert_error, auth, ready

ENDPOINT = "/v1/audio/transcriptions"
PNG_1PX = bytes.fromhex(
    "89504E470D0A1A0A0000000D49484452000000010000000108000000003A7E9B55"
    "0000000A4944415478DA63600000000200015E5E1C6D0000000049454E44AE426082"
)


def wav_header(rate=16000, channels=1, bits=16, data_len=0, riff_len=None, fmt_len=16) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    riff = 36 + data_len if riff_len is None else riff_len
    return (
        b"RIFF"
        + struct.pack("<I", riff & 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack("<I", fmt_len)
        + fmt
        + b"data"
        + struct.pack("<I", data_len & 0xFFFFFFFF)
    )


def nested_mp4_boxes(depth: int) -> bytes:
    """MP4 boxes nested `depth` deep (moov > trak > mdia > ...), each claiming to hold the rest."""
    body = b""
    for i in range(depth):
        body = struct.pack(">I", 8 + len(body)) + (b"moov", b"trak", b"mdia", b"minf", b"stbl")[i % 5] + body
    return b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + body


def nested_mkv_elements(depth: int) -> bytes:
    """A Matroska header, then `depth` levels of unknown-size Clusters and BlockGroups."""
    unknown = b"\x01\xff\xff\xff\xff\xff\xff\xff"
    ebml = bytes.fromhex("1A45DFA39F4286810142F7810142F2810442F381084282886D6174726F736B614287810442858102")
    return (
        ebml
        + bytes.fromhex("18538067")
        + unknown
        + (bytes.fromhex("1F43B675") + unknown + b"\xa0" + unknown) * depth
    )


@pytest.fixture(scope="module")
def corpus(audio_dir) -> dict[str, bytes]:
    speech = (audio_dir / "speech.wav").read_bytes()
    mp3, flac, m4a, ogg = (
        (audio_dir / f"speech.{ext}").read_bytes() for ext in ("mp3", "flac", "m4a", "ogg")
    )
    return {
        "one-byte": b"\x00",
        "truncated-mp3": mp3[:300],
        "truncated-flac": flac[:200],
        "truncated-m4a": m4a[:64],
        "truncated-ogg": ogg[:150],
        "wav-header-only": speech[:44],
        "wrong-magic-wav": b"RIFX" + speech[4:8] + b"WAVX" + speech[12:],
        "wrong-magic-flac": b"fLaX" + flac[4:],
        "png-named-wav": PNG_1PX,
        "zero-sample-rate": wav_header(rate=0, data_len=32000) + b"\x01\x02" * 16000,
        "zero-channels": wav_header(channels=0, data_len=32000) + b"\x01\x02" * 16000,
        "huge-fmt-chunk": wav_header(fmt_len=0xFFFFFFF0, data_len=100) + bytes(100),
        "huge-lengths-no-data": wav_header(data_len=0xFFFFFFFF, riff_len=0xFFFFFFFF),
        "nested-mp4-boxes": nested_mp4_boxes(20000),
        "nested-mkv-elements": nested_mkv_elements(5000),
        "hls-playlist-reading-a-local-file": b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
        b"file:///etc/passwd\n#EXT-X-ENDLIST\n",
        "ffconcat-reading-a-local-file": b"ffconcat version 1.0\nfile '/etc/passwd'\n",
        "text": b"hello, this is not audio\n" * 50,
    }


CASES = [
    "one-byte", "truncated-mp3", "truncated-flac", "truncated-m4a", "truncated-ogg", "wav-header-only",
    "wrong-magic-wav", "wrong-magic-flac", "png-named-wav", "zero-sample-rate", "zero-channels",
    "huge-fmt-chunk", "huge-lengths-no-data", "nested-mp4-boxes", "nested-mkv-elements",
    "hls-playlist-reading-a-local-file", "ffconcat-reading-a-local-file", "text",
]  # fmt: skip


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("face", ["openai", "asr"])
def test_hostile_file_gets_a_4xx_and_the_service_stays_ready(guarded, corpus, name, face):
    if face == "openai":
        url, files = guarded.url + ENDPOINT, {"file": (f"{name}.wav", corpus[name])}
    else:
        url, files = guarded.url + "/asr?output=srt", {"audio_file": (f"{name}.wav", corpus[name])}
    resp = requests.post(url, files=files, headers=auth(), timeout=60)
    error = assert_error(resp, 400)
    assert error["code"] in ("invalid_audio", "empty_audio", "empty_file"), error
    assert "passwd" not in resp.text and "root:" not in resp.text
    assert ready(guarded)


class Zeros:
    """A multipart body of `size` zero bytes, produced 1 MiB at a time (never held in memory)."""

    BOUNDARY = "reliability-zeros"
    CHUNK = bytes(1 << 20)

    def __init__(self, size: int):
        self.size = size
        self.head = (
            f'--{self.BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="zeros.wav"\r\nContent-Type: audio/wav\r\n\r\n'
        ).encode()
        self.tail = f"\r\n--{self.BOUNDARY}--\r\n".encode()

    def __len__(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def __iter__(self):
        yield self.head
        left = self.size
        while left:
            chunk = self.CHUNK[: min(left, len(self.CHUNK))]
            left -= len(chunk)
            yield chunk
        yield self.tail


def test_100_mb_of_zeros_is_streamed_in_and_refused(guarded):
    body = Zeros(100_000_000)  # under MAX_UPLOAD_MB=100 (MiB): read, spooled and decoded in full
    headers = {**auth(), "Content-Type": f"multipart/form-data; boundary={Zeros.BOUNDARY}"}
    resp = requests.post(guarded.url + ENDPOINT, data=body, headers=headers, timeout=180)
    assert_error(resp, 400, "invalid_audio")
    assert ready(guarded)
