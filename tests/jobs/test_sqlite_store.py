"""The one-VM store (SQLite + a directory) runs the whole store contract, with two stores = two workers."""

from __future__ import annotations

import pytest

from service.jobs.files import DirectoryBlobs
from service.jobs.sqlite import SqliteJobStore
from tests.jobs.store_contract import *  # noqa: F403


@pytest.fixture
def make_store(tmp_path):
    return lambda clock: SqliteJobStore(tmp_path / "jobs.db", DirectoryBlobs(tmp_path / "blobs"), clock)
