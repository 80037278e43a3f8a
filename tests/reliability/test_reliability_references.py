"""Uploads that point ffmpeg at other files on the server (playlists, manifests, concat lists, image
sequences): each is refused with 400 `invalid_audio`, and the file it points at is never opened.

The server's TMPDIR holds a `planted/` folder (speech, an MPEG-TS and an m4a of it, a PNG, an inner concat
list), made by the test. inotify watches that folder while each upload is served: an open or a read of any
planted file is the trace the test looks for. Before ffmpeg was locked down (service/intake/ffmpeg.py), the
hls, dash, concat and ffconcat uploads were decoded from the planted files and answered 200. An m4a whose
track refers to a planted file (a `dref` alias) is followed only with the mov demuxer's `enable_drefs`,
off by default: the control test shows the reference is real.
"""

from __future__ import annotations

import ctypes
import os
import struct
import subprocess

import pytest
import requests
from conftest import root_conftest
from reliability_helpers import FAST, assert_error, ready

IN_ACCESS, IN_OPEN, IN_NONBLOCK = 0x001, 0x020, 0o4000
EVENT_HEAD = struct.Struct("iIII")  # wd, mask, cookie, len (inotify(7))


class OpenWatch:
    """inotify on one folder: the names of its files opened or read since the last `names()`."""

    def __init__(self, folder):
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(IN_NONBLOCK)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        wd = self.libc.inotify_add_watch(self.fd, str(folder).encode(), IN_OPEN | IN_ACCESS)
        assert wd >= 0, os.strerror(ctypes.get_errno())

    def names(self) -> set[str]:
        seen: set[str] = set()
        for _ in range(1000):  # bounded: each read drains up to 64 KiB of events
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return seen
            offset = 0
            while offset < len(data):
                _, _, _, size = EVENT_HEAD.unpack_from(data, offset)
                name = data[offset + EVENT_HEAD.size : offset + EVENT_HEAD.size + size].rstrip(b"\0")
                if name:
                    seen.add(name.decode())
                offset += EVENT_HEAD.size + size
        return seen

    def close(self) -> None:
        os.close(self.fd)


def ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def planted(request, checkpoint, tmp_path_factory, audio_dir):
    """A server whose TMPDIR holds planted/; yields (server, planted folder, inotify watch)."""
    root = tmp_path_factory.mktemp("references")
    uploads = root / "uploads"
    folder = uploads / "planted"
    folder.mkdir(parents=True)
    speech = folder / "speech.wav"
    speech.write_bytes((audio_dir / "speech.wav").read_bytes())
    ffmpeg("-i", str(speech), str(folder / "speech.ts"))
    ffmpeg("-i", str(speech), "-c:a", "aac", str(folder / "speech.m4a"))
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=16x16:d=1", "-frames:v", "1", str(folder / "img-001.png"))
    (folder / "inner.ffconcat").write_text("ffconcat version 1.0\nfile speech.wav\n")
    launch = root_conftest(request.config).launch
    server = launch(checkpoint, root, TMPDIR=str(uploads), **FAST)
    watch = OpenWatch(folder)
    yield server, folder, watch
    watch.close()
    server.stop()
    assert not server.tracebacks(), server.tracebacks()


MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"dinf"}  # the boxes on the way to `dref`


def alias_dref(path: bytes) -> bytes:
    """A `dref` box whose one entry is a Macintosh alias to `path` (not self-contained): the track's samples
    live in that file. Field layout as libavformat/mov.c's mov_read_dref reads it; nlvl_from=1, nlvl_to=2
    resolve the last two components of `path` against the upload's own folder."""
    name = b"speech.m4a"
    record = bytes(10) + bytes(1) + bytes(27) + bytes(12) + bytes([len(name)]) + name.ljust(63, b"\0")
    record += bytes(16) + struct.pack(">HH", 1, 2) + bytes(16)
    record += struct.pack(">hH", 2, len(path)) + path + bytes(len(path) % 2) + struct.pack(">hH", -1, 0)
    entry = b"alis" + bytes(4) + record
    body = b"dref" + struct.pack(">II", 0, 1) + struct.pack(">I", 4 + len(entry)) + entry
    return struct.pack(">I", 4 + len(body)) + body


def find_dref(data: bytes, start: int, end: int, parents: list[int]):
    """(offsets of the enclosing boxes, offset and size of the dref box), or None."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"dref":
            return parents, pos, size
        if kind in MP4_CONTAINERS and (found := find_dref(data, pos + 8, pos + size, [*parents, pos])):
            return found
        pos += max(size, 8)
    return None


def referencing_m4a(m4a: bytes, path: bytes) -> bytes:
    """An m4a (index after the data, so no sample offset moves) whose track refers to another file."""
    data = bytearray(m4a)
    parents, pos, size = find_dref(data, 0, len(data), [])
    new = alias_dref(path)
    for parent in parents:
        (old,) = struct.unpack(">I", data[parent : parent + 4])
        data[parent : parent + 4] = struct.pack(">I", old + len(new) - size)
    data[pos : pos + size] = new
    return bytes(data)


def uploads(folder) -> dict[str, bytes]:
    """Each demuxer family that can refer to another file, pointing at a planted one."""
    dash = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT3S" '
        'minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011"><Period>'
        '<AdaptationSet mimeType="audio/mp4"><Representation id="a" bandwidth="64000" codecs="mp4a.40.2">'
        f"<BaseURL>{folder}/speech.m4a</BaseURL></Representation></AdaptationSet></Period></MPD>\n"
    )
    hls = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{folder}/speech.ts\n#EXT-X-ENDLIST\n"
    return {
        "hls": hls.encode(),
        "dash": dash.encode(),
        # concat lists take relative names (their `safe` mode): relative to the upload, in TMPDIR
        "ffconcat": b"ffconcat version 1.0\nfile planted/speech.wav\n",
        "concat-nested": b"ffconcat version 1.0\nfile planted/inner.ffconcat\n",
        "image2": b"ffconcat version 1.0\nfile planted/img-001.png\n",
        "mov-reference": referencing_m4a((folder / "speech.m4a").read_bytes(), b"/x/planted/speech.m4a"),
    }


FACES = {
    "openai": ("/v1/audio/transcriptions", "file"),
    "asr": ("/asr?output=json", "audio_file"),
    "detect-language": ("/detect-language", "audio_file"),
}


@pytest.mark.parametrize("face", sorted(FACES))
@pytest.mark.parametrize("family", ["hls", "dash", "ffconcat", "concat-nested", "image2", "mov-reference"])
def test_an_upload_pointing_at_a_server_file_is_refused_unread(planted, family, face):
    server, folder, watch = planted
    path, field = FACES[face]
    body = uploads(folder)[family]  # (reads a planted file for mov-reference)
    watch.names()  # forget anything before this request
    resp = requests.post(server.url + path, files={field: ("upload.wav", body)}, timeout=60)
    # the mov demuxer is a container demuxer: it opens the upload, skips the external track, finds no audio
    codes = ("invalid_audio", "empty_audio") if family == "mov-reference" else ("invalid_audio",)
    assert assert_error(resp, 400)["code"] in codes, resp.text
    assert "planted" not in resp.text and str(folder) not in resp.text
    assert watch.names() == set(), f"ffmpeg opened planted files for {family}"
    assert ready(server)


def test_the_mov_reference_is_real_when_ffmpeg_is_allowed_to_follow_it(planted):
    """The crafted m4a does refer to the planted file: ffmpeg with `-enable_drefs 1` opens it."""
    _, folder, watch = planted
    upload = folder.parent / "reference-control.m4a"
    upload.write_bytes(uploads(folder)["mov-reference"])
    watch.names()
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-enable_drefs",
        "1",
        "-i",
        str(upload),
        "-f",
        "null",
        "-",
    ]
    subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    upload.unlink()
    assert "speech.m4a" in watch.names()


def test_the_watch_sees_an_open(planted):
    """The watch itself works: reading a planted file as ffmpeg would is seen."""
    _, folder, watch = planted
    watch.names()
    ffmpeg("-i", str(folder / "speech.ts"), "-f", "null", "-")
    assert "speech.ts" in watch.names()
