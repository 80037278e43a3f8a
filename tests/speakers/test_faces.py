"""Speakers on every face: each writer's convention on a made transcript, then verbose_json, srt, vtt and
whisper-asr-webservice's /asr through the real server on the two-voice conversation."""

from __future__ import annotations

import json

import requests
from openai.types.audio import TranscriptionDiarized

from service import formats
from service.transcript import Segment, Transcript, Word
from tests.api.contract import check_type

TWO = Transcript(
    "en",
    4.0,
    (
        Segment(0.0, 1.5, " Hello there.", (1, 2), (Word(" Hello", 0.0, 0.7, 0.9, "A"),), speaker="A"),
        Segment(2.0, 3.5, " Hi --> <b>", (3,), speaker="B <x>"),
    ),
)


def test_each_writer_shows_speakers_in_its_own_convention():
    srt, _ = formats.render("srt", TWO)
    assert "[A] Hello there." in srt and "[B <x>] Hi -> <b>" in srt
    vtt, _ = formats.render("vtt", TWO)
    assert "<v A>Hello there." in vtt and "<v B x>Hi -> <b>" in vtt  # no markup inside the annotation
    assert formats.render("txt", TWO)[0] == "[A] Hello there.\n[B <x>] Hi -> <b>\n"
    verbose = json.loads(formats.render("verbose_json", TWO)[0])
    assert [s["speaker"] for s in verbose["segments"]] == ["A", "B <x>"]
    asr = json.loads(formats.render("asr_json", TWO)[0])
    assert asr["segments"][0]["words"][0]["speaker"] == "A"
    diarized = json.loads(formats.render("diarized_json", TWO)[0])
    check_type(TranscriptionDiarized, diarized)
    assert [(s["id"], s["speaker"], s["text"]) for s in diarized["segments"]] == [
        ("seg_0", "A", "Hello there."),
        ("seg_1", "B <x>", "Hi --> <b>"),
    ]


def test_without_speakers_the_writers_are_unchanged():
    plain = Transcript("en", 2.0, (Segment(0.0, 1.5, " Hello there.", (1,)),))
    assert formats.render("srt", plain)[0].endswith("\nHello there.\n")
    assert "speaker" not in formats.render("verbose_json", plain)[0]


def transcribe(service, clip, path="/v1/audio/transcriptions", field="file", params=None, **form):
    with open(clip.path, "rb") as f:
        resp = requests.post(
            service.url + path, params=params, data=form, files={field: (clip.path.name, f)}, timeout=300
        )
    assert resp.status_code == 200, resp.text
    return resp


def test_verbose_json_srt_and_vtt_carry_speakers_with_diarize(diarizing_service, two_voices):
    verbose = transcribe(diarizing_service, two_voices, response_format="verbose_json", diarize="true").json()
    assert {s["speaker"] for s in verbose["segments"]} == {"A", "B"}
    assert verbose["segments"][0]["speaker"] == "A" and "words" not in verbose  # words were not asked for
    srt = transcribe(diarizing_service, two_voices, response_format="srt", diarize="true").text
    assert "[A] " in srt and "[B] " in srt
    vtt = transcribe(diarizing_service, two_voices, response_format="vtt", diarize="true").text
    assert vtt.startswith("WEBVTT") and "<v A>" in vtt and "<v B>" in vtt
    plain = transcribe(diarizing_service, two_voices, response_format="verbose_json").json()
    assert all("speaker" not in s for s in plain["segments"])


def test_asr_labels_speakers_as_whisperx_does(diarizing_service, two_voices):
    def asr(output: str, **params):
        query = {"output": output, "diarize": "true", **params}
        return transcribe(diarizing_service, two_voices, "/asr", "audio_file", query)

    body = asr("json").json()
    assert {s["speaker"] for s in body["segments"]} == {"A", "B"}
    assert all("words" not in s for s in body["segments"])  # none asked for
    worded = asr("json", word_timestamps="true").json()
    assert all(w["speaker"] == s["speaker"] for s in worded["segments"] for w in s["words"])
    assert "[A] " in asr("srt").text and "[B] " in asr("srt").text
    assert "<v B>" in asr("vtt").text
    lines = asr("txt").text.splitlines()
    assert lines[0].startswith("[A] ") and any(line.startswith("[B] ") for line in lines)
    one = asr("json", max_speakers="1").json()
    assert {s["speaker"] for s in one["segments"]} == {"A"}
    refused = requests.post(
        diarizing_service.url + "/asr",
        params={"diarize": "true", "min_speakers": "3", "max_speakers": "2"},
        files={"audio_file": two_voices.path.read_bytes()},
        timeout=60,
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "min_speakers"
