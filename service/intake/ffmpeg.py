"""ffmpeg, locked down: it opens the upload and nothing else, and what it decodes never sits whole in memory.

Input: only the `file` protocol and only audio/video container demuxers (`DEMUXERS`): no playlist,
manifest, concat, image-sequence or subtitle demuxer runs, so nothing in an upload can make ffmpeg open
another file or URL; the mov demuxer's external references (`enable_drefs`) stay at their default, off.
The upload is named by its own path, not fed on a pipe: a pipe cannot seek, and an mp4/m4a whose index
(moov) sits after its data, as most recorders write it, fails to decode from one (docs/security.md).

Output: ffprobe reads the container's declared duration first, and a file that declares more than the
limit is refused before anything is decoded. When the declaration lies, ffmpeg stops at the limit (`-t`)
and writes 16-bit samples to a temporary file; only audio within the limit is loaded, 1 Mi samples at a time.
At most `slots` decodes run at once per worker.
"""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import tempfile
import threading

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import AudioTooLong, InsufficientStorage, InvalidAudio, Unavailable

log = logging.getLogger(__name__)

# ffmpeg's names of the audio and video container demuxers an upload may be: nothing that refers to other
# files (hls, dash, concat, image2, subtitles). "mov" covers mp4/m4a/3gp, "matroska" webm, "wav" rf64.
DEMUXERS = (
    "aac", "ac3", "aiff", "amr", "amrnb", "amrwb", "ape", "asf", "au", "avi", "caf", "dts", "eac3",
    "flac", "flv", "matroska", "mov", "mp3", "mpeg", "mpegts", "ogg", "tta", "w64", "wav", "wv",
)  # fmt: skip
LOCKED_INPUT = ("-protocol_whitelist", "file", "-format_whitelist", ",".join(DEMUXERS))
PCM_BYTES_PER_SAMPLE = 2  # s16le
CHUNK_SAMPLES = 1 << 20  # samples converted to float32 at a time
DECLARED_SLACK_SECONDS = 1.0  # a container's duration may round up: refuse only beyond this


def file_url(path: str) -> str:
    """The upload as ffmpeg's `file:` URL: an absolute path, so no character of it reads as a protocol."""
    return "file:" + os.path.abspath(path)


def unreadable() -> InvalidAudio:
    return InvalidAudio(
        "The file could not be decoded as audio. Supported: audio and video containers ffmpeg reads "
        "(wav, mp3, m4a/mp4, ogg/opus, webm/mkv, flac, aac, avi, mpeg-ts); not playlists or manifests.",
        param="file",
    )


def too_long(max_seconds: float) -> AudioTooLong:
    return AudioTooLong(
        f"The audio is longer than the {max_seconds:g} s this server accepts (MAX_AUDIO_SECONDS).",
        param="file",
    )


def stalled(timeout: float) -> InvalidAudio:
    return InvalidAudio(
        f"Decoding the audio took longer than {timeout:g} s; the file may be corrupt or stalled.",
        param="file",
        code="decode_timeout",
    )


def run_locked(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ffmpeg or ffprobe; a stall is a 400 `decode_timeout`, a refusal a 400 `invalid_audio`."""
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise stalled(timeout) from None
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")[-300:].strip()
        if "No space left on device" in stderr:
            raise InsufficientStorage("The server has no room to decode the upload; try again later.")
        log.info("%s rejected an upload: %s", cmd[0], stderr)
        raise unreadable()
    return proc


def declared_seconds(path: str, timeout: float) -> float | None:
    """The duration the container declares (ffprobe reads headers, decodes nothing); None if it has none."""
    cmd = [
        "ffprobe", "-v", "error", *LOCKED_INPUT,
        "-show_entries", "format=duration", "-of", "default=noprint_wrappers=1:nokey=1", file_url(path),
    ]  # fmt: skip
    out = run_locked(cmd, timeout).stdout.decode(errors="replace").strip()
    try:
        return float(out)
    except ValueError:  # "N/A": a stream without a declared length
        return None


def decode_to_pcm(path: str, pcm_path: str, max_seconds: float, timeout: float) -> int:
    """ffmpeg decodes at most `max_seconds` + 1 s into s16le at 16 kHz mono; the number of samples written."""
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "0",
        *LOCKED_INPUT, "-i", file_url(path), "-t", f"{max_seconds + 1:.3f}", "-vn", "-sn", "-dn",
        "-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-y", pcm_path,
    ]  # fmt: skip
    run_locked(cmd, timeout)
    return os.path.getsize(pcm_path) // PCM_BYTES_PER_SAMPLE


def load_pcm(pcm_path: str, samples: int) -> np.ndarray:
    """The s16le file as float32 in [-1, 1], converted a chunk at a time (never held twice)."""
    audio = np.empty(samples, np.float32)
    pcm = np.memmap(pcm_path, np.int16, mode="r", shape=(samples,))
    for start in range(0, samples, CHUNK_SAMPLES):
        chunk = pcm[start : start + CHUNK_SAMPLES]
        np.multiply(chunk, np.float32(1 / 32768.0), out=audio[start : start + len(chunk)])
    del pcm
    return audio


class Decoder:
    """Decodes uploads for one worker: at most `slots` at once, each within `max_seconds` and `timeout`."""

    def __init__(self, slots: int, max_seconds: float, timeout: float, tmp_dir: str):
        self.slots = threading.BoundedSemaphore(slots)
        self.max_seconds, self.timeout, self.tmp_dir = max_seconds, timeout, tmp_dir

    def within(self, max_seconds: float) -> Decoder:
        """This decoder with a shorter length limit, sharing its slots (a reference clip beside an upload)."""
        shorter = copy.copy(self)
        shorter.max_seconds = min(max_seconds, self.max_seconds)
        return shorter

    def decode(self, path: str) -> np.ndarray:
        """16 kHz mono float32 in [-1, 1]; 400 when unreadable, empty or too long; 503 when no slot frees."""
        if os.path.getsize(path) == 0:
            raise InvalidAudio("The uploaded file is empty.", param="file", code="empty_file")
        if not self.slots.acquire(timeout=self.timeout):
            raise Unavailable(
                "Too many uploads are being decoded; try again shortly.", code="decoders_busy", retry_after=5
            )
        try:
            return self._decode(path)
        finally:
            self.slots.release()

    def _decode(self, path: str) -> np.ndarray:
        declared = declared_seconds(path, self.timeout)
        if declared is not None and declared > self.max_seconds + DECLARED_SLACK_SECONDS:
            raise too_long(self.max_seconds)
        with tempfile.NamedTemporaryFile(prefix="pcm-", dir=self.tmp_dir) as pcm:
            samples = decode_to_pcm(path, pcm.name, self.max_seconds, self.timeout)
            if samples == 0:
                raise InvalidAudio("The file contains no audio samples.", param="file", code="empty_audio")
            if samples > self.max_seconds * SAMPLE_RATE:
                raise too_long(self.max_seconds)
            return load_pcm(pcm.name, samples)
