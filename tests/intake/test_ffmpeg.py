"""The locked-down ffmpeg (service/intake/ffmpeg.py) with the real ffmpeg and ffprobe."""

from __future__ import annotations

import subprocess
import threading

import numpy as np
import pytest

from service.audio import SAMPLE_RATE
from service.errors import AudioTooLong, InvalidAudio, Unavailable
from service.intake import ffmpeg as intake_ffmpeg
from service.intake.ffmpeg import DEMUXERS, Decoder
from tests.helpers import wait_for


def encode(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def moov_offset(path) -> tuple[int, int]:
    data = path.read_bytes()
    return data.find(b"moov"), data.find(b"mdat")


@pytest.fixture(scope="module")
def long_m4a(tmp_path_factory):
    """90 s of tone as AAC in mp4: once with the index (moov) after the data, as recorders write it, once
    with it first (`-movflags +faststart`). 90 s is more than ffmpeg's read-ahead, so a pipe could not
    reach the index and seek back."""
    d = tmp_path_factory.mktemp("m4a")
    encode("-f", "lavfi", "-i", "sine=f=440:d=90", "-c:a", "aac", str(d / "end.m4a"))
    encode("-i", str(d / "end.m4a"), "-c", "copy", "-movflags", "+faststart", str(d / "fast.m4a"))
    return d


@pytest.mark.parametrize("name", ["end.m4a", "fast.m4a"])
def test_mp4_decodes_with_its_index_at_either_end(long_m4a, name):
    moov, mdat = moov_offset(long_m4a / name)
    assert (moov > mdat) == (name == "end.m4a")
    audio = Decoder(1, 600, 60, str(long_m4a)).decode(str(long_m4a / name))
    assert abs(len(audio) / SAMPLE_RATE - 90) < 0.1
    assert 0.1 < np.abs(audio).max() <= 1.0


@pytest.mark.parametrize("ext", ["wav", "mp3", "ogg", "webm", "mp4", "flac", "m4a"])
def test_each_container_of_the_test_corpus_decodes(audio_dir, ext):
    audio = Decoder(1, 600, 60, str(audio_dir)).decode(str(audio_dir / f"speech.{ext}"))
    assert 2 < len(audio) / SAMPLE_RATE < 10


def test_a_text_file_is_refused(tmp_path):
    path = tmp_path / "notes"
    path.write_text("hello\n" * 100)
    with pytest.raises(InvalidAudio) as caught:
        Decoder(1, 600, 60, str(tmp_path)).decode(str(path))
    assert caught.value.code == "invalid_audio"


def test_a_file_longer_than_the_limit_is_refused_from_its_header(tmp_path):
    path = tmp_path / "long.flac"
    encode("-f", "lavfi", "-i", "anullsrc=r=1000:cl=mono", "-t", "120", str(path))
    assert intake_ffmpeg.declared_seconds(str(path), 60) == pytest.approx(120, abs=0.1)
    with pytest.raises(AudioTooLong):
        Decoder(1, 60, 60, str(tmp_path)).decode(str(path))
    assert list(tmp_path.glob("pcm-*")) == []  # refused before anything was decoded


def test_demuxers_are_containers_ffmpeg_has_and_none_refers_to_other_files():
    out = subprocess.run(["ffmpeg", "-hide_banner", "-demuxers"], capture_output=True, text=True, check=True)
    known = {
        n for line in out.stdout.splitlines() if line[:3].strip() == "D" for n in line.split()[1].split(",")
    }
    assert set(DEMUXERS) <= known
    referring = {"hls", "dash", "concat", "image2", "image2pipe", "webm_dash_manifest", "sdp", "rtsp", "tee"}
    assert not referring & set(DEMUXERS)
    assert not any(name.endswith("_pipe") or "sub" in name or name in ("srt", "ass") for name in DEMUXERS)


def test_at_most_slots_decodes_run_at_once(monkeypatch, tmp_path):
    """Six threads through a two-slot decoder: never more than two inside, and all six get through."""
    path = tmp_path / "one"
    path.write_bytes(b"x")
    inside, most, release, lock = [0], [0], threading.Semaphore(0), threading.Lock()

    def held(self, _path):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        release.acquire(timeout=60)
        with lock:
            inside[0] -= 1
        return np.zeros(1, np.float32)

    monkeypatch.setattr(Decoder, "_decode", held)
    decoder = Decoder(2, 600, 60, str(tmp_path))
    threads = [threading.Thread(target=decoder.decode, args=(str(path),)) for _ in range(6)]
    for t in threads:
        t.start()
    wait_for(lambda: inside[0] == 2, timeout=30, what="two decodes inside")
    for _ in range(6):
        release.release()
    for t in threads:
        t.join(60)
    assert most[0] == 2 and inside[0] == 0


def test_no_free_slot_within_the_timeout_is_503_with_retry_after(tmp_path):
    path = tmp_path / "one"
    path.write_bytes(b"x")
    decoder = Decoder(1, 600, 1, str(tmp_path))
    assert decoder.slots.acquire(timeout=1)  # the only slot, held: whatever the machine's speed
    with pytest.raises(Unavailable) as caught:
        decoder.decode(str(path))
    assert caught.value.status == 503 and caught.value.code == "decoders_busy"
    assert caught.value.retry_after == 5
