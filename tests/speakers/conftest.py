"""A two-speaker espeak-ng conversation with its reference turns, and the real server (gunicorn, the
embedded tiny.en) that diarizes it."""

from __future__ import annotations

import pytest

from tests.conftest import launch
from tools import conversations


@pytest.fixture(scope="session")
def two_voices(tmp_path_factory) -> conversations.Conversation:
    """About 20 s: two voices taking four turns of a sentence, pauses of 0.3-1.2 s."""
    directory = tmp_path_factory.mktemp("conversation")
    return conversations.conversation(directory, "two-voices", conversations.SPEAKERS[:2], 4, seed=1)


@pytest.fixture(scope="session")
def diarizing_service(tiny_en, tmp_path_factory):
    server = launch(tiny_en, tmp_path_factory.mktemp("diarizing"), VAD="true")
    yield server
    server.stop()
    assert not server.tracebacks(), server.tracebacks()
