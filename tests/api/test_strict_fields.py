"""Strict form parsing (#37): what the API states is accepted, everything else is refused with a 400 that
names the field, over many generated values (hypothesis), not only the ones the issue found."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from service.api import fields
from service.api.asr_fields import AsrQuery
from service.api.openai_fields import TranscriptionForm
from service.errors import InvalidRequest

BOOLS = ("stream", "condition_on_previous_text")
NUMBERS = ("temperature", "beam_size", "no_speech_threshold", "compression_ratio_threshold")
MANY = settings(max_examples=200, deadline=None)


def refusal(model, *pairs) -> dict:
    with pytest.raises(InvalidRequest) as caught:
        fields.parse(model, MultiDict(pairs))
    return caught.value.body()["error"]


def not_true_or_false(text: str) -> bool:
    return text != "" and text.lower() not in ("true", "false")


@MANY
@given(name=st.sampled_from(BOOLS), value=st.text(max_size=8).filter(not_true_or_false))
def test_a_boolean_is_true_or_false_and_nothing_else(name, value):
    assert refusal(TranscriptionForm, (name, value))["param"] == name


@pytest.mark.parametrize("value", ["true", "false", "True", "FALSE"])
def test_true_and_false_in_any_case_are_booleans(value):
    form = fields.parse(TranscriptionForm, MultiDict([("condition_on_previous_text", value)]))
    assert form.condition_on_previous_text is (value.lower() == "true")


@pytest.mark.parametrize("value", ["yes", "on", "1", "t", "y", "no", "off", "0"])
def test_the_asr_face_takes_the_same_two_words(value):
    assert refusal(AsrQuery, ("word_timestamps", value))["param"] == "word_timestamps"


@MANY
@given(
    name=st.sampled_from(NUMBERS),
    number=st.sampled_from(["0.5", "1", "0", "2"]),
    pad=st.tuples(st.text(" \t\n\r\x0b\x0c", max_size=3), st.text(" \t\n\r\x0b\x0c", max_size=3)).filter(
        lambda p: p != ("", "")
    ),
)
def test_a_number_with_spaces_around_it_is_refused(name, number, pad):
    error = refusal(TranscriptionForm, (name, pad[0] + number + pad[1]))
    assert error["param"] == name and "spaces" in error["message"]


def test_the_same_numbers_without_spaces_are_taken():
    form = fields.parse(TranscriptionForm, MultiDict([("temperature", "0.5"), ("beam_size", "2")]))
    assert form.temperature == 0.5 and form.beam_size == 2


@MANY
@given(index=st.text(min_size=1, max_size=6).filter(lambda s: "]" not in s and "[" not in s))
def test_a_list_field_in_any_bracketed_spelling_but_its_own_is_refused(index):
    key = f"timestamp_granularities[{index}]"
    error = refusal(TranscriptionForm, (key, "word"), ("response_format", "verbose_json"))
    assert error["code"] == "unsupported_parameter"


def test_a_list_field_in_its_own_spellings_is_taken():
    for key in ("timestamp_granularities[]", "timestamp_granularities"):
        form = fields.parse(
            TranscriptionForm, MultiDict([(key, "word"), ("response_format", "verbose_json")])
        )
        assert form.timestamp_granularities == ["word"]


def test_an_object_field_still_takes_its_bracketed_parts():
    pairs = [("chunking_strategy[type]", "server_vad"), ("chunking_strategy[threshold]", "0.4")]
    form = fields.parse(TranscriptionForm, MultiDict(pairs))
    assert form.chunking_strategy.threshold == 0.4


@MANY
@given(name=st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=65, max_size=5000))
def test_an_unknown_name_is_repeated_at_most_64_characters_long(name):
    error = refusal(TranscriptionForm, ("z" + name, "1"))
    assert error["param"] == ("z" + name)[:64] + "..."
    assert len(error["message"]) < 200
