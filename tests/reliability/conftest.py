"""Fixtures for the reliability tests: a key-protected server shared by the module.

Servers are the real gunicorn from tests/conftest.py (`launch`), on loopback. `WHISPER_FORCE_TOKENS` makes
each window cost the same few decoder steps, so request times do not depend on what the random-weight
test model happens to generate.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (HERE, ROOT):  # reliability_helpers; deploy/ (whose timeouts the shutdown test compares)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from reliability_helpers import API_KEY, FAST, OTHER_KEY  # noqa: E402


def root_conftest(config):
    """tests/conftest.py as pytest loaded it (importlib mode gives it no importable name)."""
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) == str(ROOT / "tests" / "conftest.py"):
            return plugin
    raise RuntimeError("tests/conftest.py is not loaded")


@pytest.fixture(scope="session")
def guarded(request, checkpoint, tmp_path_factory):
    """One server with API_KEYS set, shared by the reliability tests; no traceback in its log at the end."""
    launch = root_conftest(request.config).launch
    server = launch(
        checkpoint,
        tmp_path_factory.mktemp("guarded"),
        API_KEYS=f"{API_KEY},{OTHER_KEY}",
        MAX_AUDIO_SECONDS="600",
        **FAST,
    )
    yield server
    server.stop()
    assert not server.tracebacks(), server.tracebacks()
