"""The field declaration on its own (no server): what each request means to the decoder."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from werkzeug.datastructures import MultiDict

from service.api import fields
from service.api.asr_fields import AsrQuery
from service.api.openai_fields import TranscriptionForm, TranslationForm
from service.batching.job import FALLBACK_TEMPERATURES, with_server_defaults
from service.engines import engine_class
from service.errors import InvalidRequest
from service.intake.vad import VadParams
from service.settings import DEFAULTS, Settings

SERVER_VAD = VadParams(DEFAULTS.vad_threshold, DEFAULTS.vad_min_silence_ms, DEFAULTS.vad_speech_pad_ms)


def parse(model, *pairs, **context):
    return fields.parse(model, MultiDict(pairs), context or None)


def engine(settings: Settings, multilingual: bool = True) -> SimpleNamespace:
    """What with_server_defaults reads of the model's engine: its class's facts (the class WHISPER_ENGINE
    names), and whether the loaded model is multilingual."""
    kind = engine_class(settings.whisper_engine)
    return SimpleNamespace(untimed_beam_size=kind.untimed_beam_size, is_multilingual=multilingual)


def served(form, settings: Settings = Settings(), multilingual: bool = True):
    """The request's options once the server's settings and its engine filled in what it left open."""
    return with_server_defaults(form.job_options(), settings, engine(settings, multilingual))


def refused(model, *pairs, **context) -> dict:
    with pytest.raises(InvalidRequest) as caught:
        parse(model, *pairs, **context)
    return caught.value.body()["error"]


@pytest.mark.parametrize(
    ("value", "code"),
    [("en", "en"), ("English", "en"), ("en-US", "en"), ("pt_BR", "pt"), ("eng", "en"), ("ger", "de"),
     ("deu", "de"), ("zh-Hans-CN", "zh"), ("jv", "jw"), ("auto", None), ("", None), ("Auto", None)],
)  # fmt: skip
def test_language_values_mean_what_users_mean(value, code):
    assert parse(TranscriptionForm, ("language", value)).language == code
    assert parse(AsrQuery, ("language", value)).language == code


def test_unknown_language_is_unsupported_language():
    assert refused(AsrQuery, ("language", "klingon"))["code"] == "unsupported_language"


def test_initial_prompt_conditions_the_first_window_only():
    options = parse(AsrQuery, ("initial_prompt", "Names: Ann, Bo.")).job_options()
    assert options.prompt == "Names: Ann, Bo." and options.prompt_first_window_only
    options = parse(TranscriptionForm, ("prompt", "Names: Ann, Bo.")).job_options()
    assert options.prompt == "Names: Ann, Bo." and not options.prompt_first_window_only


@pytest.mark.parametrize(
    ("pairs", "vad"),
    [
        ([("chunking_strategy", "auto")], SERVER_VAD),
        ([("chunking_strategy[type]", "server_vad"), ("chunking_strategy[threshold]", "0.3"),
          ("chunking_strategy[prefix_padding_ms]", "100"), ("chunking_strategy[silence_duration_ms]", "700")],
         VadParams(threshold=0.3, min_silence_ms=700, speech_pad_ms=100)),
        ([("chunking_strategy", '{"type": "server_vad", "silence_duration_ms": 300}')],
         VadParams(DEFAULTS.vad_threshold, 300, DEFAULTS.vad_speech_pad_ms)),
    ],
)  # fmt: skip
def test_chunking_strategy_selects_vad(pairs, vad):
    assert served(parse(TranscriptionForm, *pairs)).vad == vad


def test_vad_filter_selects_vad_and_unset_leaves_the_server_default():
    server = Settings(vad_threshold=0.7, vad_min_silence_ms=500)  # the VAD_* settings
    server_vad = VadParams(0.7, 500, DEFAULTS.vad_speech_pad_ms)
    off = server.replace(vad=False)  # VAD=false
    assert served(parse(AsrQuery, ("vad_filter", "true"))).vad == SERVER_VAD
    assert served(parse(AsrQuery, ("vad_filter", "true")), server).vad == server_vad
    assert served(parse(AsrQuery, ("vad_filter", "false")), server).vad is False
    assert served(parse(AsrQuery), server).vad == server_vad
    assert served(parse(AsrQuery), off).vad is False
    assert served(parse(TranscriptionForm), server).vad == server_vad
    # asked for by name with VAD=false: the VAD_* settings still say how
    assert served(parse(TranscriptionForm, ("chunking_strategy", "auto")), off).vad == server_vad


def test_decode_mode_and_english_only_models_fill_in_what_the_request_left_open():
    sequential = Settings(decode_mode="sequential")
    assert served(parse(TranscriptionForm)).sequential is False
    assert served(parse(TranscriptionForm), sequential).sequential is True
    assert served(parse(AsrQuery), sequential).sequential is True
    assert served(parse(TranscriptionForm, ("condition_on_previous_text", "true"))).sequential is True
    assert served(parse(TranscriptionForm)).language is None  # detected on the first window
    assert served(parse(TranscriptionForm), multilingual=False).language == "en"
    assert served(parse(AsrQuery, ("language", "en")), multilingual=False).language == "en"


def test_keywords_bias_through_the_prompt():
    form = parse(
        TranscriptionForm,
        ("prompt", "Meeting."),
        ("keywords[]", "Kubernetes"),
        ("keywords[]", "gRPC"),
    )
    assert form.job_options().prompt == "Meeting. Kubernetes, gRPC"


def test_include_logprobs_asks_the_decoder_for_them():
    assert parse(TranscriptionForm, ("include[]", "logprobs")).job_options().logprobs
    assert not parse(TranscriptionForm).job_options().logprobs


def test_temperature_zero_is_the_ladder_and_anything_else_one_step():
    assert parse(TranslationForm).job_options().temperatures == FALLBACK_TEMPERATURES
    assert parse(TranslationForm, ("temperature", "0.4")).job_options().temperatures == (0.4,)


def test_translations_keep_the_audio_language():
    options = parse(TranslationForm, ("language", "de")).job_options()
    assert (options.task, options.language) == ("translate", "de")


@pytest.mark.parametrize(
    ("pairs", "param", "code"),
    [
        ([("temperature", "nan")], "temperature", None),
        ([("beam_size", "2.5")], "beam_size", None),
        ([("stream", "maybe")], "stream", None),
        ([("colour", "blue")], "colour", "unsupported_parameter"),
        ([("known_speaker_names[]", "a")], "known_speaker_names[]", None),  # without speakers asked for
        ([("stream", "true"), ("response_format", "vtt")], "response_format", "unsupported_value"),
        ([("timestamp_granularities[]", "word")], "timestamp_granularities[]", None),
        ([("model", "whisper-2")], "model", "model_not_found"),
    ],
)
def test_refusals_name_the_field(pairs, param, code):
    error = refused(TranscriptionForm, *pairs, models=["test", "whisper-1"])
    assert (error["param"], error["code"]) == (param, code)


def test_the_file_sent_as_text_is_left_to_the_missing_file_check():
    assert parse(TranscriptionForm, ("file", "not-a-file")).response_format == "json"


def test_beam_size_setting_fills_in_only_what_the_request_left_open():
    from service.settings import SettingsError, from_env

    beam5 = Settings(beam_size=5)
    unset = parse(TranscriptionForm).job_options()
    chosen = parse(TranscriptionForm, ("beam_size", "2")).job_options()
    assert with_server_defaults(unset, beam5, engine(beam5)).decode_options(0, "en").beam_size == 5
    assert with_server_defaults(chosen, beam5, engine(beam5)).beam_size == 2  # the request's choice wins
    greedy = with_server_defaults(unset, Settings(), engine(Settings()))
    assert greedy.beam_size is None  # default: greedy, as transcribe()
    with pytest.raises(SettingsError, match="BEAM_SIZE"):
        from_env({"BEAM_SIZE": "17"})


@pytest.mark.parametrize(
    ("model", "pairs", "timestamps"),
    [
        (TranscriptionForm, [], False),  # json
        (TranscriptionForm, [("response_format", "text")], False),
        (TranscriptionForm, [("stream", "true")], False),
        (TranscriptionForm, [("response_format", "verbose_json")], True),
        (TranscriptionForm, [("response_format", "srt")], True),
        (TranscriptionForm, [("response_format", "vtt")], True),
        (TranslationForm, [], False),
        (TranscriptionForm, [("response_format", "json"), ("condition_on_previous_text", "true")], True),
        (AsrQuery, [], False),  # txt
        (AsrQuery, [("output", "srt")], True),
        (AsrQuery, [("output", "json")], True),
        (AsrQuery, [("output", "txt"), ("word_timestamps", "true")], True),
    ],
)
def test_only_responses_that_carry_times_are_decoded_with_timestamp_tokens(model, pairs, timestamps):
    faster = Settings(whisper_engine="faster-whisper")  # untimed decoding needs beam search: 5 there
    assert served(parse(model, *pairs), faster).timestamps is timestamps
    assert served(parse(model, *pairs)).timestamps is True  # openai-whisper: greedy, so timed
    assert served(parse(model, *pairs), Settings(untimed_decoding=False)).timestamps is True


def test_untimed_decoding_searches_with_the_engines_own_beam():
    """faster-whisper's batched pipeline decodes with beam 5; openai-whisper keeps BEAM_SIZE (greedy by
    default, as transcribe()): its beam search costs twice the time on a CPU."""
    json, srt = parse(TranscriptionForm), parse(TranscriptionForm, ("response_format", "srt"))
    faster = Settings(whisper_engine="faster-whisper")
    assert served(json, faster).beam_size == 5 and served(srt, faster).beam_size is None
    assert served(json, Settings()).beam_size is None
    assert served(json, Settings(untimed_beam_size=3)).beam_size == 3
    assert served(json, Settings(beam_size=4)).beam_size == 4
    chosen = parse(TranscriptionForm, ("beam_size", "2"))
    assert served(chosen, faster).beam_size == 2  # the request's choice wins
