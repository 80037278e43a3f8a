"""The page shows speakers (real Chromium, real server, tiny.en): 'Label speakers' sends diarize=true, each
segment's label names its speaker, and the page's subtitles write speakers exactly as the server's do."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from service.formats import render
from service.transcript import Segment, Transcript
from tests.web.conftest import browser, downloads, web_model, web_service  # noqa: F401 - fixtures
from tests.web.test_page import open_page, page_state, transcribe

SPOKEN = [
    {"start": 0.5, "end": 2.0, "text": " Hello there.", "speaker": "A"},
    {"start": 2.5, "end": 4.0, "text": " Hi --> you.", "speaker": "B <&>"},
    {"start": 4.5, "end": 5.0, "text": " No speaker."},
]


def test_the_page_labels_speakers(web_service, browser, two_voices):  # noqa: F811
    open_page(browser, web_service)
    browser.find_element(By.ID, "speakers").click()
    transcribe(browser, two_voices.path)
    assert page_state(browser) == "done", browser.find_element(By.ID, "error").text
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#segments li.segment .time")]
    assert labels[0].endswith("· A") and any(label.endswith("· B") for label in labels), labels


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_the_page_writes_speakers_like_the_server(web_service, browser, fmt):  # noqa: F811
    open_page(browser, web_service)
    written = browser.execute_script(f"return WRITERS.{fmt}({{segments: arguments[0]}})", SPOKEN)
    segments = tuple(Segment(s["start"], s["end"], s["text"], (), speaker=s.get("speaker")) for s in SPOKEN)
    assert written == render(fmt, Transcript("en", 5.0, segments))[0]
