"""faster-whisper's model by path or by name. A name is read from WHISPER_MODEL_DIR (its Hugging Face cache)
offline first: the image bakes it there, read-only, and asking the Hub at every start would fetch a newer
revision into a directory the service cannot write, or wait on a network the host may lack. Only a name not
there yet is downloaded (a development machine)."""

from __future__ import annotations

import logging
import os

from faster_whisper import WhisperModel

from .base import download_failed

log = logging.getLogger(__name__)


def whisper_model(source: str, **options) -> WhisperModel:
    """WhisperModel(source, **options) without a request to the Hub when the model is already on disk."""
    try:
        return WhisperModel(source, local_files_only=True, **options)
    except Exception:  # a name not in the cache yet: huggingface_hub raises its own types
        if os.path.isdir(source):  # a directory has nothing to download: its own error stands
            raise
        log.info("%s is not in %s yet: downloading it", source, options.get("download_root"))
    try:
        return WhisperModel(source, local_files_only=False, **options)
    except Exception as error:  # huggingface_hub raises its own types for a missing network
        raise download_failed(source, error) from None
