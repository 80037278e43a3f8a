"""faster-whisper with a model NAME (the image's default): the copy in WHISPER_MODEL_DIR is used as it is,
without asking the Hub, so a container whose /models is read-only and whose host has no way out starts the
same as any other; a name that is not there is still downloaded."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import huggingface_hub.constants
import pytest

from service.engines import ModelUnavailable, create_engine
from service.settings import from_env

REPO = "models--Systran--faster-whisper-tiny.en"  # where faster-whisper's download_model("tiny.en") caches
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub(monkeypatch):
    """A stand-in for the Hub's HTTP API on loopback that counts what it is asked and knows no model."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            asked.append(self.path)
            self.send_error(404)

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    yield asked
    server.shutdown()
    server.server_close()


def baked(model_dir: Path, ct2: Path) -> Path:
    """The Hub cache layout that download_model(..., cache_dir=model_dir) leaves, holding the real tiny.en."""
    snapshot = model_dir / REPO / "snapshots" / REVISION
    shutil.copytree(ct2, snapshot, ignore=shutil.ignore_patterns("__*"))
    (model_dir / REPO / "refs").mkdir()
    (model_dir / REPO / "refs" / "main").write_text(REVISION)
    return model_dir


def engine_for(model_dir: Path):
    return create_engine(
        from_env(
            {
                "WHISPER_ENGINE": "faster-whisper",
                "WHISPER_MODEL": "tiny.en",
                "WHISPER_DEVICE": "cpu",
                "WHISPER_MODEL_DIR": str(model_dir),
            }
        )
    )


def test_a_baked_model_name_loads_without_asking_the_hub(hub, tiny_en_ct2, tmp_path):
    engine = engine_for(baked(tmp_path / "models", tiny_en_ct2))
    engine.load()
    assert engine.model is not None and not engine.is_multilingual  # the real tiny.en, English-only
    assert hub == []  # not one request: before, every start asked /api/models/.../revision/main


def test_a_name_missing_from_the_model_dir_is_fetched_from_the_hub(hub, tmp_path):
    engine = engine_for(tmp_path / "empty")
    with pytest.raises(ModelUnavailable):
        engine.load()  # the stand-in Hub knows no model: a clear error, after asking it
    assert any("faster-whisper-tiny.en" in path for path in hub), hub
