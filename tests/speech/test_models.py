"""Several real models in one service (MODELS), chosen per request: the default tiny.en (openai-whisper),
tiny.en on faster-whisper, and the multilingual base on both engines; each with its own model loop and
metrics; an idle one unloaded after MODEL_TTL, its memory given back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from tests.conftest import Service, launch
from tests.helpers import wait_for
from tools import speech

GERMAN = "Guten Morgen. Das Wetter ist heute sehr schön."
MIB = 2**20


@pytest.fixture(scope="module")
def offered(tiny_en, tiny_en_ct2, base_ct2, base_pt, tmp_path_factory) -> Service:
    models = f"tiny-fw={tiny_en_ct2}:faster-whisper,base={base_ct2}:faster-whisper,base-ow={base_pt}"
    server = launch(
        tiny_en,
        tmp_path_factory.mktemp("models"),
        WHISPER_ENGINE="openai-whisper",
        MODELS=models,  # base-ow: WHISPER_ENGINE's engine
        MODEL_TTL="2",
        # float32 on faster-whisper: CPU's default int8 costs base the German sentence (measured: "guten
        # Morgen! basst mit erst heute Nacht!?", WER 0.62; float32 0.375, as openai-whisper)
        WHISPER_COMPUTE_TYPE="float32",
    )
    yield server
    server.stop()
    assert not server.tracebacks(), server.tracebacks()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[speech.Clip, speech.Clip]:
    d = tmp_path_factory.mktemp("clips")
    return speech.Clip(speech.say(d / "de.wav", GERMAN, voice="de"), GERMAN), speech.clip(d, 0, "en-us+f3")


def post(service: Service, clip: speech.Clip, **fields) -> requests.Response:
    with open(clip.path, "rb") as f:
        return requests.post(
            service.url + "/v1/audio/transcriptions",
            files={"file": (clip.path.name, f)},
            data={"response_format": "verbose_json", **fields},
            timeout=300,
        )


def listed(service: Service) -> dict[str, dict]:
    return {row["id"]: row for row in requests.get(service.url + "/v1/models", timeout=30).json()["data"]}


def worker_rss(service: Service) -> int:
    """Resident memory of the gunicorn worker (the master's one child)."""
    pid = service.process.pid
    (child,) = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(Path(f"/proc/{child}/statm").read_text().split()[1]) * 4096


def given_back(service: Service, name: str) -> bool:
    """Every load of the model has been followed by its unload, memory given back (the log's two lines)."""
    log = service.log()
    unloads = [names.split(", ") for names in re.findall(r"unloaded idle models (.*?) \(MODEL_TTL", log)]
    return log.count(f"loading model {name} (") == sum(name in names for names in unloads)


def test_models_are_listed_and_only_the_default_is_loaded_at_start(offered):
    models = listed(offered)
    assert list(models)[:2] == ["tiny.en", "whisper-1"]
    assert list(models)[-3:] == ["tiny-fw", "base", "base-ow"]
    assert models["tiny.en"]["loaded"] and models["whisper-1"]["engine"] == "openai-whisper"
    assert [models[name]["engine"] for name in ("tiny-fw", "base", "base-ow")] == [
        "faster-whisper",
        "faster-whisper",
        "openai-whisper",
    ]
    ready = requests.get(offered.url + "/readyz", timeout=10).json()  # about the default model only
    assert (ready["status"], ready["model"], ready["engine"]) == ("ready", "tiny.en", "openai-whisper")


def test_each_request_picks_its_model_and_engine(offered, clips):
    german, english = clips
    for model in ("base", "base-ow"):  # base on each engine detects German and transcribes it
        body = post(offered, german, model=model).json()
        assert body["language"] == "german" and speech.wer(GERMAN, body["text"]) < 0.5, (model, body)
    refused = post(offered, german, model="tiny.en", language="de")  # the default is English-only
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unsupported_language"
    for model in ("tiny.en", "whisper-1", "tiny-fw"):  # the default (its name, an alias); faster-whisper
        body = post(offered, english, model=model).json()
        assert body["language"] == "english" and speech.wer(english.text, body["text"]) < 0.3, (model, body)
    unknown = post(offered, english, model="large-v9")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    # each model has its own loop: its batches and requests carry its name and engine
    engines = {"base": "faster-whisper", "base-ow": "openai-whisper", "tiny-fw": "faster-whisper"}
    for model, engine in engines.items():
        assert offered.metric("whisper_batch_size_count", model=model, engine=engine) >= 1, model
    assert offered.metric("whisper_batch_size_count", model="tiny.en", engine="openai-whisper") >= 2
    assert offered.metric("whisper_requests_total", model="base", status="200") >= 1


def test_an_idle_model_is_unloaded_after_the_ttl_and_its_memory_comes_back(offered, clips):
    # the earlier tests' models unload first, so no other unload falls between the readings
    extra = ("tiny-fw", "base", "base-ow")
    wait_for(lambda: all(given_back(offered, name) for name in extra), timeout=60, what="the others unloaded")
    before = worker_rss(offered)
    for _ in range(3):  # read the memory while it is loaded (MODEL_TTL=2 may unload it between requests)
        assert post(offered, clips[0], model="base-ow").status_code == 200
        loaded = worker_rss(offered)
        if listed(offered)["base-ow"]["loaded"]:
            break
    wait_for(lambda: not listed(offered)["base-ow"]["loaded"], timeout=60, what="base-ow unloaded")
    assert offered.metric("whisper_model_loaded", model="base-ow") == 0
    # listed as unloaded once it takes no more work; its memory is given back after its loop has ended, and
    # the log says when (reading it before then is what failed in CI: 117 MiB of about 300 back)
    wait_for(lambda: given_back(offered, "base-ow"), timeout=60, what="base-ow's memory given back")
    unloaded = worker_rss(offered)
    # base in float32 on openai-whisper: about 300 MiB of weights, given back on unload
    figures = ((loaded - before) / MIB, (loaded - unloaded) / MIB)
    assert loaded - before > 150 * MIB, figures  # it took its memory ...
    assert loaded - unloaded > 150 * MIB, figures  # ... and gave it back
    assert post(offered, clips[0], model="base-ow").json()["language"] == "german"  # loaded again on use
