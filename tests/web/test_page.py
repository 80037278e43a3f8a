"""The transcription page at / in headless Chromium, against a real server.

What the page shows and saves is compared with what the API itself returns for the same file: the model comes
from the `web_model` fixture (conftest.py), and these assertions hold for a real model unchanged.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
import requests
from selenium.webdriver.common.by import By

from service.formats import render
from service.transcript import Segment, Transcript
from tests.conftest import ffmpeg
from tests.helpers import in_background, wait_for
from tools import speech

from .conftest import as_json, console_errors, page_state, screenshot, wait

TRANSCRIBE_SECONDS = 180  # a few seconds of audio on a CPU shared with other test runs


def api(service, fmt: str, path, **fields) -> requests.Response:
    with open(path, "rb") as f:
        response = requests.post(
            service.url + "/v1/audio/transcriptions",
            files={"file": f},
            data={"response_format": fmt, **fields},
            timeout=TRANSCRIBE_SECONDS,
        )
    response.raise_for_status()
    return response


def open_page(browser, service):
    browser.get(service.url + "/")
    # the language list comes from /openapi.json: once it is there, the page has finished starting
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#language option")) > 50, 20, "languages")


def transcribe(browser, path, **choices):
    browser.find_element(By.ID, "file").send_keys(str(path))
    for field, value in choices.items():
        browser.find_element(By.CSS_SELECTOR, f"#{field} option[value='{value}']").click()
    browser.find_element(By.ID, "go").click()
    wait(browser, lambda d: page_state(d) in ("done", "error"), TRANSCRIBE_SECONDS, "the transcription")


def shown_segments(browser) -> list[str]:
    return [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#segments li.segment .text")]


def downloaded(browser, downloads, format_: str, name: str) -> bytes:
    button = browser.find_element(By.CSS_SELECTOR, f"#actions button[data-format='{format_}']:not([hidden])")
    button.click()
    path = downloads / name
    wait_for(lambda: path.exists() and path.stat().st_size > 0, 10, what=f"download of {name}")
    time.sleep(0.2)  # Chromium renames the finished .crdownload; the size is final once it exists
    return path.read_bytes()


def test_page_transcribes_a_speech_file_and_shows_the_api_text(
    web_service, browser, audio_dir, tmp_path, downloads
):
    open_page(browser, web_service)
    transcribe(browser, audio_dir / "speech.wav")
    assert page_state(browser) == "done", browser.find_element(By.ID, "error").text
    screenshot(browser, tmp_path / "web-page.png", readme=True)

    expected = api(web_service, "verbose_json", audio_dir / "speech.wav").json()
    assert shown_segments(browser) == [s["text"].strip() for s in expected["segments"] if s["text"].strip()]
    language = browser.find_element(By.ID, "language-out").text
    assert language == f"{expected['language'].capitalize()} (detected)"
    assert "Done: 0:04.8 of audio" in browser.find_element(By.ID, "status").text

    text = downloaded(browser, downloads, "txt", "speech.txt")
    assert text == api(web_service, "text", audio_dir / "speech.wav").content
    saved = as_json(downloaded(browser, downloads, "json", "speech.json").decode())
    assert saved == expected  # verbose_json's body, rebuilt from the stream
    assert console_errors(browser) == []


# one page transcription's cost on the server, from its Prometheus metrics (service/metrics.py)
COSTS = {
    "requests": ("whisper_requests_total", {"endpoint": "/v1/audio/transcriptions"}),
    "uploads decoded": ("whisper_stage_duration_seconds_count", {"stage": "audio_decode"}),
    "jobs": ("whisper_audio_duration_seconds_count", {}),
    "model calls": ("whisper_batch_duration_seconds_count", {}),  # language detection and decoding
}


def costs(service) -> dict[str, float]:
    return {what: service.metric(name, **labels) for what, (name, labels) in COSTS.items()}


def spent(service, action) -> dict[str, float]:
    before = costs(service)
    action()
    return {what: value - before[what] for what, value in costs(service).items()}


def test_the_page_decodes_a_file_once(web_service, browser, audio_dir, downloads):
    """One upload, one job, and the model calls of one API request: the stream alone gives the page its
    segments, language and downloads (it used to ask again for verbose_json, a second decode)."""
    open_page(browser, web_service)
    page = spent(web_service, lambda: transcribe(browser, audio_dir / "speech.wav"))
    assert page_state(browser) == "done", browser.find_element(By.ID, "error").text
    one_request = spent(web_service, lambda: api(web_service, "verbose_json", audio_dir / "speech.wav"))
    assert one_request["model calls"] >= 1
    assert page == {"requests": 1, "uploads decoded": 1, "jobs": 1, "model calls": one_request["model calls"]}
    assert browser.find_element(By.CSS_SELECTOR, "#segments li.segment .time").text.startswith("0:0")
    saved = as_json(downloaded(browser, downloads, "json", "speech.json").decode())
    assert saved == api(web_service, "verbose_json", audio_dir / "speech.wav").json()


def test_srt_and_vtt_downloads_equal_the_api_formats(web_service, browser, audio_dir, downloads):
    open_page(browser, web_service)
    transcribe(browser, audio_dir / "speech.mp3", language="en", format="srt")
    assert page_state(browser) == "done", browser.find_element(By.ID, "error").text
    assert browser.find_element(By.ID, "language-out").text == "English (chosen)"
    assert browser.find_element(By.ID, "download").text == "Download .srt"

    srt = downloaded(browser, downloads, "srt", "speech.srt")
    assert srt == api(web_service, "srt", audio_dir / "speech.mp3", language="en").content
    vtt = downloaded(browser, downloads, "vtt", "speech.vtt")
    assert vtt == api(web_service, "vtt", audio_dir / "speech.mp3", language="en").content


# Segments with every oddity the writers must smooth out: line breaks of all kinds, arrows, times that
# run backwards or below zero, blank text, hours, and Python's whitespace that JavaScript's \s lacks.
ODD_SEGMENTS = [
    {"start": 0.0, "end": 1.5, "text": " Hello there. "},
    {"start": 1.2, "end": 1.0, "text": "back\r\n\r\n in time --> and ---> on"},
    {"start": -3.0, "end": 2.0, "text": "\x1cfile separators\x1f and\u2028line\u2029breaks\x85"},
    {"start": 2.0, "end": 2.5, "text": "   \n  "},
    {"start": 2.0004, "end": 2.0005, "text": "\ufeffbyte order mark\u3000"},
    {"start": 3725.0625, "end": 3725.5, "text": "an hour later, ünïcödé 字幕 🎧"},
    {"start": 0.0015, "end": 0.0025, "text": "halves round to even"},
]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_the_page_writes_subtitles_exactly_like_the_server(web_service, browser, fmt):
    open_page(browser, web_service)
    written = browser.execute_script(f"return WRITERS.{fmt}({{segments: arguments[0]}})", ODD_SEGMENTS)
    segments = tuple(Segment(s["start"], s["end"], s["text"], ()) for s in ODD_SEGMENTS)
    expected, _ = render(fmt, Transcript("en", 3726.0, segments))
    assert written == expected


def test_segments_appear_while_a_long_file_still_streams(start_web_service, browser, audio_dir, tmp_path):
    # a batch holds up to BATCH_SIZE windows of a job, and its deltas come out together: with one window per
    # batch, 75 s of speech (three windows) streams like a file of more windows than a batch holds
    service = start_web_service(BATCH_SIZE="1")
    open_page(browser, service)
    story = speech.story(tmp_path, 75.0, exact=True)  # different sentences: real speech, not a loop
    browser.find_element(By.ID, "file").send_keys(str(story.path))
    wait(browser, lambda d: "1:15.0" in d.find_element(By.ID, "file-name").text, 10, "the file's duration")
    browser.find_element(By.ID, "go").click()
    probe = (
        "return [document.querySelectorAll('#segments li.part').length,"
        " document.getElementById('app').dataset.state, document.getElementById('status').textContent]"
    )
    first_part = lambda d: (seen := d.execute_script(probe))[0] >= 1 and seen  # noqa: E731
    parts, state, status = wait(browser, first_part, TRANSCRIBE_SECONDS, "a first part")
    assert state == "streaming", "the first part was shown only after the stream had ended"
    assert "1:15.0 of audio" in status and "part" in status
    screenshot(browser, tmp_path / "web-page-streaming.png")
    wait(browser, lambda d: page_state(d) in ("done", "error"), TRANSCRIBE_SECONDS, "the transcription")
    assert page_state(browser) == "done", browser.find_element(By.ID, "error").text
    assert len(shown_segments(browser)) >= 3  # 75 s of speech: three windows, each with at least a segment


def test_cancel_stops_the_work_on_the_server(start_web_service, browser, audio_dir, tmp_path):
    service = start_web_service(BATCH_SIZE="1")
    # five minutes of different sentences: about 12 windows, decoded one at a time: time to cancel
    long_file = speech.story(tmp_path, 300.0).path
    open_page(browser, service)
    browser.find_element(By.ID, "file").send_keys(str(long_file))
    browser.find_element(By.ID, "go").click()
    first_part = lambda d: d.find_elements(By.CSS_SELECTOR, "#segments li.part")  # noqa: E731
    wait(browser, first_part, TRANSCRIBE_SECONDS, "a first part")
    browser.find_element(By.ID, "cancel").click()
    wait(browser, lambda d: page_state(d) == "cancelled", 10, "the page to stop")
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert browser.find_element(By.ID, "go").is_enabled()
    cancelled = lambda: service.metric("whisper_cancelled_requests_total", reason="disconnect")  # noqa: E731
    wait_for(cancelled, 30, what="the server to cancel the job")


def test_a_microphone_recording_is_translated(start_web_service, multilingual_model, browser):
    # Chromium's fake capture device (conftest's flags) plays a beep: audio enough for the whole round trip.
    # tiny.en cannot translate, so this test serves the random multilingual checkpoint (mechanics only).
    web_service = start_web_service(**multilingual_model)
    open_page(browser, web_service)
    browser.find_element(By.ID, "record").click()
    wait(browser, lambda d: d.find_element(By.ID, "record-label").text == "Stop recording", 10, "recording")
    time.sleep(2)
    browser.find_element(By.ID, "record").click()
    wait(browser, lambda d: "recording.webm" in d.find_element(By.ID, "file-name").text, 10, "the recording")
    browser.find_element(By.CSS_SELECTOR, "#task option[value='translate']").click()
    assert not browser.find_element(By.ID, "language").is_enabled()  # translations take no language
    browser.find_element(By.ID, "go").click()
    wait(browser, lambda d: page_state(d) in ("done", "error"), TRANSCRIBE_SECONDS, "the translation")
    assert page_state(browser) == "done", browser.find_element(By.ID, "error").text
    assert browser.find_element(By.ID, "language-out").text.endswith(" → English")
    recorded = re.search(r"Done: 0:(\d\d\.\d) of audio", browser.find_element(By.ID, "status").text)
    assert recorded and 1.5 <= float(recorded[1]) <= 8, browser.find_element(By.ID, "status").text


def test_oversize_file_is_explained(start_web_service, browser, audio_dir):
    service = start_web_service(MAX_UPLOAD_MB="0.05")  # 50 KB; espeak's 4.8 s WAV is about 210 KB
    open_page(browser, service)
    transcribe(browser, audio_dir / "speech.wav")
    assert page_state(browser) == "error"
    message = browser.find_element(By.ID, "error").text
    assert re.match(r"This file \(2\d\d KB\) is larger than this server accepts\. ", message), message
    assert "compressed format such as MP3 or Opus" in message


def test_api_key_is_asked_for_and_kept_only_in_the_tab(start_web_service, browser, audio_dir):
    key = "k" * 24
    service = start_web_service(API_KEYS=key)
    for path in ("/", "/docs", "/web/app.js", "/web/swagger-ui/swagger-ui.css"):
        assert requests.get(service.url + path, timeout=10).status_code == 200, path  # open pages ...
    assert requests.get(service.url + "/v1/models", timeout=10).status_code == 401  # ... the API is not

    open_page(browser, service)
    assert browser.find_element(By.ID, "key-row").is_displayed()  # /openapi.json says a key is needed
    transcribe(browser, audio_dir / "speech.wav")
    error = browser.find_element(By.ID, "error").text
    assert error == "This server needs an API key. Enter it above and try again."

    browser.find_element(By.ID, "key").send_keys("wrong-" + key)
    transcribe(browser, audio_dir / "speech.wav")
    assert browser.find_element(By.ID, "error").text.startswith("The server did not accept this API key.")

    browser.find_element(By.ID, "key").clear()
    browser.find_element(By.ID, "key").send_keys(key)
    transcribe(browser, audio_dir / "speech.wav")
    assert page_state(browser) == "done", browser.find_element(By.ID, "error").text
    assert browser.execute_script("return sessionStorage.getItem('whisper-service-api-key')") == key
    assert browser.execute_script("return localStorage.length + document.cookie.length") == 0
    browser.refresh()
    assert browser.find_element(By.ID, "key").get_attribute("value") == key  # same tab: still there


def test_busy_server_says_when_to_retry(start_web_service, browser, audio_dir, tmp_path):
    service = start_web_service(QUEUE_MAX_REQUESTS="1", BATCH_SIZE="1")
    long_file = tmp_path / "ten-minutes.wav"  # 20 windows, decoded one at a time: the queue stays full
    ffmpeg("-stream_loop", "-1", "-i", str(audio_dir / "padded.wav"), "-t", "600", str(long_file))
    stop = threading.Event()
    busy = in_background(stream_and_hold, service, long_file, stop)
    wait_for(lambda: service.metric("whisper_queue_audio_seconds") > 0, 60, what="the long job to be queued")
    try:
        open_page(browser, service)
        transcribe(browser, audio_dir / "speech.wav")
        message = browser.find_element(By.ID, "error").text
        busy_words = (
            r"The server is busy with other transcriptions right now\. Please try again in \d+ seconds?\."  # noqa: E501
        )
        assert re.fullmatch(busy_words, message), message
    finally:
        stop.set()
        busy["thread"].join(TRANSCRIBE_SECONDS)


def stream_and_hold(service, path, stop: threading.Event) -> None:
    """Hold the queue's place with a streamed transcription until told to stop, then hang up (cancels it)."""
    url = service.url + "/v1/audio/transcriptions"
    with open(path, "rb") as f:
        response = requests.post(url, files={"file": f}, data={"stream": "true"}, stream=True, timeout=60)
    with response:
        for _ in response.iter_lines():
            if stop.is_set():
                break
