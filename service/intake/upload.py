"""Uploads -> a private temp file, deleted afterwards; decoded by service/intake/ffmpeg.py."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from ..errors import InsufficientStorage
from .ffmpeg import Decoder

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
    """Decode one file with the locked-down ffmpeg (service/intake/ffmpeg.py), its PCM beside the file."""
    return Decoder(1, max_seconds, timeout, os.path.dirname(os.path.abspath(path))).decode(path)
