"""Every limit /openapi.json declares for a request field is enforced: one past it gets 400 in OpenAI's error
shape naming that field, and the limit itself is accepted. The document's request schemas are the field
declaration's (service/fields.py), not a restatement."""

from __future__ import annotations

import math

import pytest
import requests

from service.api import asr_fields, openai_fields, openapi

FORM_PATHS = ("/v1/audio/transcriptions", "/v1/audio/translations")
NEEDS = {  # what another field must say for this one to be allowed at all
    "timestamp_granularities[]": {"response_format": "verbose_json"},
    "min_speakers": {"response_format": "diarized_json"},
    "max_speakers": {"response_format": "diarized_json"},
    # the subtitle layout (subtitle_fields.py): srt or vtt only; a line count needs a width
    **{
        name: {"response_format": "srt"}
        for name in ("max_line_width", "max_words_per_line", "highlight_words")
    },
    "max_line_count": {"response_format": "srt", "max_line_width": "10"},
    "callback_url": {"background": "true"},
}
# a field with a pattern: its values at and past a length limit are this prefix padded with "x"
PATTERNED = {"callback_url": "https://93.184.216.34/"}  # a global address: no DNS, no private destination
# what a value at the limit meets next, when it is not the missing file: (param, words of the message)
NEXT_CHECK = {"callback_url": ("callback_url", "WEBHOOK_SECRET")}  # the shared service has no secret
QUERY_NEEDS = {  # /asr's: its format field is output
    name: {"output" if k == "response_format" else k: v for k, v in needs.items()}
    for name, needs in NEEDS.items()
    if name.startswith(("max_line", "max_words", "highlight", "callback"))
}
# pairs of a name and a data URL of 2-10 s of audio, decoded before the upload: their limits (count, pairing,
# length, content) are each checked in tests/speakers/test_refusals.py
PAIRED = ("known_speaker_names[]", "known_speaker_references[]")


@pytest.fixture(scope="module")
def document(service) -> dict:
    return requests.get(service.url + "/openapi.json", timeout=30).json()


def form_properties(document: dict, path: str) -> dict:
    body = document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
    return body["schema"]["properties"]


def past(schema: dict, prefix: str = "") -> list:
    """(value at the limit, value one past it) for each limit the property schema declares."""
    cases = []
    step = 1 if schema.get("type") == "integer" else None
    if "maximum" in schema:
        top = schema["maximum"]
        cases.append((top, top + step if step else math.nextafter(top, math.inf)))
    if "minimum" in schema:
        bottom = schema["minimum"]
        cases.append((bottom, bottom - step if step else math.nextafter(bottom, -math.inf)))
    if "maxLength" in schema:
        at = prefix + "x" * (schema["maxLength"] - len(prefix))
        cases.append((at, at + "x"))
    if "enum" in schema:
        cases.append((schema["enum"][-1], "not-" + str(schema["enum"][0])))
    if "const" in schema:
        cases.append((schema["const"], "not-" + str(schema["const"])))
    return cases


def form_cases(properties: dict) -> list[tuple[str, list, list]]:
    """(field, fields at the limit, fields one past it) for every limit of every form field."""
    out = []
    for name, schema in properties.items():
        if name == "file" or name in PAIRED:
            continue
        if schema.get("type") == "array":
            item = schema["items"]
            for ok, bad in past(item):
                out.append((name, [(name, str(ok))], [(name, str(bad))]))
            if "maxItems" in schema:
                value = str(item.get("enum", [item.get("const", "a")])[0])
                n = schema["maxItems"]
                out.append((name, [(name, value)] * n, [(name, value)] * (n + 1)))
            continue
        for variant in schema.get("oneOf", [schema]):
            if variant.get("type") == "object":  # chunking_strategy's server_vad: bracketed fields
                kind = [(f"{name}[type]", variant["properties"]["type"]["const"])]
                for sub, sub_schema in variant["properties"].items():
                    if sub == "type":
                        continue
                    for ok, bad in past(sub_schema):
                        out.append(
                            (
                                name,
                                kind + [(f"{name}[{sub}]", str(ok))],
                                kind + [(f"{name}[{sub}]", str(bad))],
                            )
                        )
            else:
                for ok, bad in past(variant, PATTERNED.get(name, "")):
                    out.append((name, [(name, str(ok))], [(name, str(bad))]))
    return out


def post_form(service, path: str, pairs: list, name: str) -> requests.Response:
    data = [(k, v) for k, v in NEEDS.get(name, {}).items()] + pairs
    # no file: validation comes first, so a value that passes it meets "missing file" instead
    return requests.post(service.url + path, data=data, files={"unused": ("x", b"")}, timeout=60)


def assert_refused(resp: requests.Response, name: str) -> None:
    status = 404 if name == "model" else 400  # a model not offered: OpenAI's 404 model_not_found (#38)
    assert resp.status_code == status, (name, resp.status_code, resp.text)
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert error["param"] == name, (name, error)


def test_every_declared_form_limit_is_enforced(service, document):
    checked = 0
    for path in FORM_PATHS:
        for name, at_limit, one_past in form_cases(form_properties(document, path)):
            assert_refused(post_form(service, path, one_past, name), name)
            resp = post_form(service, path, at_limit, name)
            param, words = NEXT_CHECK.get(name, ("file", ""))
            error = resp.json()["error"]
            assert resp.status_code == 400 and error["param"] == param and words in error["message"], (
                name,
                at_limit,
                resp.text,
            )
            checked += 1
    assert checked >= 40  # ranges, lengths, counts and enums of both forms (and server_vad's fields)


def test_every_declared_query_limit_is_enforced(service, document):
    checked = 0
    for path in ("/asr", "/detect-language"):
        for parameter in document["paths"][path]["post"]["parameters"]:
            name = parameter["name"]
            for ok, bad in past(parameter["schema"], PATTERNED.get(name, "")):
                needs = QUERY_NEEDS.get(name, {})
                resp = requests.post(
                    service.url + path, params={**needs, name: bad}, files={"unused": ("x", b"")}, timeout=60
                )
                assert_refused(resp, name)
                resp = requests.post(
                    service.url + path, params={**needs, name: ok}, files={"unused": ("x", b"")}, timeout=60
                )
                param, words = NEXT_CHECK.get(name, ("audio_file", ""))
                error = resp.json()["error"]
                assert resp.status_code == 400 and error["param"] == param and words in error["message"], (
                    name,
                    resp.text,
                )
                checked += 1
    assert checked >= 7  # initial_prompt's length and every enum (task, language, output, the booleans)


def test_the_document_is_the_declaration(document):
    """openapi.py restates nothing: its request schemas are exactly what fields.py derives."""
    assert form_properties(document, "/v1/audio/transcriptions") == {
        **openapi.form_schema(openai_fields.TranscriptionForm, {"file": "x"})["properties"],
        "file": form_properties(document, "/v1/audio/transcriptions")["file"],
        "model": form_properties(document, "/v1/audio/transcriptions")[
            "model"
        ],  # + the served names, at runtime
    }
    asr = document["paths"]["/asr"]["post"]["parameters"]
    assert asr == openapi.query_parameters(asr_fields.AsrQuery)
    translation = form_properties(document, "/v1/audio/translations")
    assert {"language", "timestamp_granularities[]", "stream", "chunking_strategy"} <= set(translation)


def test_the_model_enum_lists_what_the_server_serves(service, document):
    names = [m["id"] for m in requests.get(service.url + "/v1/models", timeout=30).json()["data"]]
    for path in FORM_PATHS:
        assert form_properties(document, path)["model"]["enum"] == names
