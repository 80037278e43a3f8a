"""The model registry (service/batching/registry.py) in-process, on the real embedded models: MODELS' syntax,
a model loaded on first use and unloaded after MODEL_TTL with its memory given back, and a load refused with
503 when the free memory reading (the `free_memory` seam) is below what the model needs."""

from __future__ import annotations

import gc
import time
import weakref

import pytest

from service.batching import memory
from service.batching.registry import Registry
from service.batching.scheduler import Scheduler
from service.engines import create_engine
from service.errors import NotFound, Unavailable
from service.settings import Settings, SettingsError, from_env
from service.settings.choices import ENGINES
from service.settings.models import ENGINE_NAMES, ModelEntry, model_entries
from tests.helpers import wait_for

MIB = 2**20


# -- MODELS, MODEL_TTL, PRELOAD_MODELS -----------------------------------------------------------------------
def test_models_syntax_names_sources_and_engines():
    raw = "base=build/base-ct2:faster-whisper, base-ow=build/base.pt:openai-whisper,turbo=turbo,,"
    assert model_entries("MODELS", raw) == (
        ModelEntry("base", "build/base-ct2", "faster-whisper"),
        ModelEntry("base-ow", "build/base.pt", "openai-whisper"),
        ModelEntry("turbo", "turbo", None),  # WHISPER_ENGINE's engine
    )
    assert model_entries("MODELS", "win=C:/models/x") == (ModelEntry("win", "C:/models/x", None),)
    assert set(ENGINE_NAMES) == set(ENGINES)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"MODELS": "base"}, "name=source"),
        ({"MODELS": "=build/base.pt"}, "name=source"),
        ({"MODELS": "base="}, "name=source"),
        ({"MODELS": "a b=x"}, "space"),
        ({"MODELS": "a=x,a=y"}, "twice"),
        ({"MODELS": "a=x:fast-whisper"}, "no engine"),
        ({"MODELS": "whisper-1=x"}, "alias"),
        ({"MODELS": "turbo=x", "WHISPER_MODEL": "turbo"}, "default model"),
        ({"MODELS": "a=x", "PRELOAD_MODELS": "b"}, "PRELOAD_MODELS"),
        ({"MODEL_TTL": "-1"}, "MODEL_TTL"),
    ],
)
def test_bad_models_settings_stop_the_service_with_one_line(environ, named):
    with pytest.raises(SettingsError, match=named) as refused:
        from_env(environ)
    assert "\n" not in str(refused.value) and "e.g." in str(refused.value)


def test_the_memory_a_model_needs_is_its_weights_twice(base_ct2, base_pt):
    assert memory.weights_bytes(str(base_ct2)) == sum(f.stat().st_size for f in base_ct2.iterdir())
    assert memory.needed_bytes(str(base_pt)) == 2 * base_pt.stat().st_size
    assert memory.weights_bytes("large-v3") == memory.weights_bytes("large") == 3100e6
    assert memory.weights_bytes("tiny.en") == 78e6
    assert memory.free_bytes("cpu") > 0  # MemAvailable


# -- the registry on real models -----------------------------------------------------------------------------
@pytest.fixture
def registry(tiny_en, base_pt, base_ct2):
    """make(free_memory=None, **settings) -> a Registry offering base on both engines beside tiny.en (the
    default, not started: only MODELS' models are loaded here)."""
    made = []

    def make(free_memory=None, **changes):
        models = (
            ModelEntry("base", str(base_ct2), "faster-whisper"),
            ModelEntry("base-ow", str(base_pt), "openai-whisper"),
        )
        settings = Settings(
            whisper_model=str(tiny_en), whisper_device="cpu", vad=False, warmup=False, models=models
        ).replace(**changes)
        made.append(Registry(Scheduler(create_engine(settings), settings), settings, free_memory=free_memory))
        return made[-1]

    yield make
    for registry in made:
        registry.begin_shutdown()


def test_a_model_is_loaded_on_first_use_and_unloaded_after_the_ttl(registry):
    models = registry(model_ttl=60)
    assert [row["loaded"] for row in models.describe() if row["id"].startswith("base")] == [False, False]
    scheduler = models.acquire("base-ow")
    assert scheduler.ready and scheduler.engine.is_multilingual and scheduler.labels["model"] == "base-ow"
    weights = weakref.ref(scheduler.engine.model)
    thread = scheduler.loop.thread
    loaded = memory.rss_bytes()
    assert {row["id"]: row["loaded"] for row in models.describe()}["base-ow"] is True
    assert models.unload_idle(time.monotonic() + 120) == []  # a lease is held: kept however long
    models.release(scheduler)
    assert models.unload_idle(time.monotonic() + 30) == []  # idle for less than MODEL_TTL
    assert models.unload_idle(time.monotonic() + 61) == ["base-ow"]
    del scheduler
    gc.collect()
    assert not thread.is_alive() and weights() is None  # the loop ended; the weights are freed
    assert {row["id"]: row["loaded"] for row in models.describe()}["base-ow"] is False
    # the resident memory the load took comes back: 305 MiB grew, 203 MiB came back (the first load also
    # keeps about 100 MiB of torch's and the tokenizer's one-time state; measured); a second load and
    # unload leave nothing more behind
    unloaded = memory.rss_bytes()
    assert loaded - unloaded > 150 * MIB, (loaded - unloaded) / MIB
    again = models.acquire("base-ow")  # a later request loads it again
    assert again.ready
    models.release(again)
    del again
    assert models.unload_idle(time.monotonic() + 61) == ["base-ow"]
    gc.collect()
    assert memory.rss_bytes() - unloaded < 50 * MIB, (memory.rss_bytes() - unloaded) / MIB


def test_a_model_that_would_not_fit_is_refused_with_503_and_not_loaded(registry, base_ct2):
    need = memory.needed_bytes(str(base_ct2))
    readings = {"cpu": need - 1}
    models = registry(free_memory=lambda device: readings[device])
    with pytest.raises(Unavailable) as refused:
        models.acquire("base")
    assert (refused.value.status, refused.value.code) == (503, "model_does_not_fit")
    assert "MiB" in refused.value.message and refused.value.retry_after
    assert not models.loaded
    readings["cpu"] = need  # enough now
    scheduler = models.acquire("base")
    assert scheduler.ready and scheduler.engine.name == "faster-whisper"
    models.release(scheduler)


def test_names_pick_the_default_or_a_model_and_unknown_names_are_404(registry):
    models = registry()
    assert models.acquire(None) is models.default
    assert models.acquire("whisper-1") is models.default  # OpenAI's aliases: the default model
    assert models.acquire("tiny.en") is models.default
    with pytest.raises(NotFound) as unknown:
        models.acquire("large-v9")
    assert (unknown.value.status, unknown.value.code, unknown.value.param) == (
        404,
        "model_not_found",
        "model",
    )
    assert models.names()[-2:] == ["base", "base-ow"]


def test_preloaded_models_load_at_start_and_stay(registry):
    models = registry(preload_models=("base",), model_ttl=1)
    models.start()
    scheduler = models.loaded["base"].scheduler
    wait_for(lambda: scheduler.ready, timeout=120)
    assert models.unload_idle(time.monotonic() + 3600) == []
    full = registry(preload_models=("base",), free_memory=lambda device: 0)
    full.start()  # one that does not fit is logged, not fatal: the worker still starts
    assert not full.loaded


def test_the_http_face_answers_503_json_when_a_model_would_not_fit(checkpoint, base_ct2, audio_dir):
    """create_app in-process: the request's `model` reaches the registry; its refusal is OpenAI's error."""
    from service import create_app

    settings = Settings(
        whisper_model=str(checkpoint),
        whisper_device="cpu",
        vad=False,
        warmup=False,
        models=(ModelEntry("base", str(base_ct2), "faster-whisper"),),
    )
    app = create_app(settings)
    models = app.extensions["models"]
    models.free_memory = lambda device: 1 * MIB  # the seam: a nearly full device
    wait_for(lambda: models.default.ready, timeout=60)
    client = app.test_client()
    with open(audio_dir / "speech.wav", "rb") as f:
        answer = client.post(
            "/v1/audio/transcriptions", data={"file": (f, "speech.wav"), "model": "base", "language": "en"}
        )
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "30"
    assert (
        answer.json["error"]["code"] == "model_does_not_fit"
        and answer.json["error"]["type"] == "server_error"
    )
    listed = {row["id"]: row for row in client.get("/v1/models").json["data"]}
    assert listed["base"]["loaded"] is False and listed["base"]["engine"] == "faster-whisper"
    models.begin_shutdown()
