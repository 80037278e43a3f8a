"""Uploads -> a private temp file -> ffmpeg -> 16 kHz mono float32, with size, duration and time limits."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import AudioTooLong, InsufficientStorage, InvalidAudio

log = logging.getLogger(__name__)


@contextlib.contextmanager
def spooled_upload(stream: BinaryIO, tmp_dir: str) -> Iterator[str]:
    """Copy an upload to a private temporary file (never wholly into memory) and delete it afterwards."""
    try:
        fd, path = tempfile.mkstemp(prefix="upload-", dir=tmp_dir)
    except OSError as error:
        raise _storage_error(error) from None
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(stream, out, length=1 << 20)
        yield path
    except OSError as error:
        raise _storage_error(error) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _storage_error(error: OSError) -> Exception:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorage("The server has no room to store the upload; try again later.")
    log.error("cannot spool upload: %s", error)
    return InsufficientStorage("The server could not store the upload; try again later.")


def decode_file(path: str, max_seconds: float, timeout: float) -> np.ndarray:
    """Decode any format ffmpeg reads into 16 kHz mono float32 in [-1, 1].

    ffmpeg stops after `max_seconds` (plus a little), so a small file that expands to hours of audio costs
    no more than the limit; anything longer is refused by duration.
    """
    if os.path.getsize(path) == 0:
        raise InvalidAudio("The uploaded file is empty.", param="file", code="empty_file")
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "0",
        "-i", path, "-t", f"{max_seconds + 1:.3f}", "-vn", "-sn", "-dn",
        "-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise InvalidAudio(
            f"Decoding the audio took longer than {timeout:g} s; the file may be corrupt or stalled.",
            param="file",
            code="decode_timeout",
        ) from None
    if proc.returncode != 0:
        log.info("ffmpeg rejected an upload: %s", proc.stderr.decode(errors="replace")[-300:].strip())
        raise InvalidAudio(
            "The file could not be decoded as audio. Supported: anything ffmpeg reads "
            "(wav, mp3, m4a/mp4, ogg/opus, webm, flac, video containers).",
            param="file",
        )
    audio = np.frombuffer(proc.stdout, np.int16).astype(np.float32) / 32768.0
    if audio.size == 0:
        raise InvalidAudio("The file contains no audio samples.", param="file", code="empty_audio")
    if audio.size > max_seconds * SAMPLE_RATE:
        raise AudioTooLong(
            f"The audio is longer than the {max_seconds:g} s this server accepts (MAX_AUDIO_SECONDS).",
            param="file",
        )
    return audio
