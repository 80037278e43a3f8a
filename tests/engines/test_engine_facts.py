"""Engine facts live on the engine classes (#35): the name WHISPER_ENGINE gives each, the beam untimed
decoding uses when UNTIMED_BEAM_SIZE=0, and the inputs of a model call per device when BATCH_SIZE=0. The
scheduler and the request defaults read them from the model's engine, never from the engine's name."""

from __future__ import annotations

import pytest

from service.api.openai_fields import TranscriptionForm
from service.batching.job import with_server_defaults
from service.engines import ENGINES, engine_class
from service.settings import Settings
from tools import configuration_docs


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_each_engine_class_carries_its_facts(name):
    kind = engine_class(name)
    assert kind.name == name  # WHISPER_ENGINE's choices name the classes that answer to them
    assert kind.untimed_beam_size >= 0 and kind.gpu_batch_size >= 1 and kind.cpu_batch_size >= 1


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_the_default_call_size_is_the_engines_for_its_device(name):
    engine = engine_class(name)(Settings(whisper_engine=name, whisper_device="cpu"))
    assert engine.default_batch_size() == type(engine).cpu_batch_size
    engine.device = "cuda:0"
    assert engine.default_batch_size() == type(engine).gpu_batch_size


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_untimed_decoding_searches_with_the_engine_classs_beam(name):
    settings = Settings(whisper_engine=name, whisper_device="cpu", beam_size=3)
    engine = engine_class(name)(settings)
    json = TranscriptionForm.model_validate({}).job_options()  # json: untimed unless greedy
    served = with_server_defaults(json, settings, engine)
    assert served.beam_size == (engine.untimed_beam_size or settings.beam_size)
    assert with_server_defaults(json, settings.replace(untimed_beam_size=2), engine).beam_size == 2


def test_the_configuration_page_names_the_classes_values():
    facts = configuration_docs.engine_facts()
    for name in ENGINES:
        kind = engine_class(name)
        assert f"{kind.untimed_beam_size or 'BEAM_SIZE'} on {name}" in facts["untimed_beams"]
        assert f"{kind.gpu_batch_size} on cuda, {kind.cpu_batch_size} on cpu" in facts["batch_sizes"]
