"""/docs (Swagger UI on /openapi.json) in headless Chromium, and what both pages promise over HTTP."""

from __future__ import annotations

import requests
from selenium.webdriver.common.by import By

from .conftest import console_errors, screenshot, wait

RENDER_SECONDS = 30  # Swagger UI's 1.7 MB bundle, parsed on a CPU shared with other test runs
CALL_SECONDS = 120


def operation(browser, operation_id: str):
    """Swagger UI's block for one operation (untagged operations sit under "default")."""
    return browser.find_element(By.ID, f"operations-default-{operation_id}")


def open_docs(browser, service):
    browser.get(service.url + "/docs")
    rendered = lambda d: d.find_elements(By.ID, "operations-default-transcribeAudio")  # noqa: E731
    wait(browser, rendered, RENDER_SECONDS, "Swagger UI")


def try_it_out(browser, block, upload=None):
    """Expand an operation, press "Try it out", choose the file to upload, press "Execute"; (status, body)."""
    block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    wait(browser, lambda d: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"), 10, "Try it out")
    block.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    if upload:
        file_input = "input[type='file']"
        wait(browser, lambda d: block.find_elements(By.CSS_SELECTOR, file_input), 10, "the file input")
        block.find_element(By.CSS_SELECTOR, file_input).send_keys(str(upload))
    block.find_element(By.CSS_SELECTOR, ".execute").click()
    status = ".live-responses-table .response .response-col_status"
    wait(browser, lambda d: block.find_elements(By.CSS_SELECTOR, status), CALL_SECONDS, "the response")
    body = block.find_element(By.CSS_SELECTOR, ".live-responses-table .response-col_description pre").text
    return block.find_element(By.CSS_SELECTOR, status).text.strip(), body


def test_docs_render_the_transcription_operation(web_service, browser, tmp_path):
    open_docs(browser, web_service)
    block = operation(browser, "transcribeAudio")
    assert "/v1/audio/transcriptions" in block.text and "Transcribe audio." in block.text
    assert operation(browser, "translateAudio").is_displayed()
    assert operation(browser, "asr").is_displayed()
    screenshot(browser, tmp_path / "docs-page.png", readme=True)
    assert console_errors(browser) == []  # a CSP violation or a failed asset would show here


def test_try_it_out_calls_the_live_service(web_service, browser, audio_dir):
    open_docs(browser, web_service)
    status, body = try_it_out(browser, operation(browser, "listModels"))
    assert status == "200" and "whisper-1" in body

    status, body = try_it_out(browser, operation(browser, "transcribeAudio"), audio_dir / "speech.wav")
    assert status == "200" and '"text"' in body
    assert console_errors(browser) == []


def test_both_pages_have_a_strict_policy_and_their_own_metrics_label(web_service):
    for path in ("/", "/docs"):
        response = requests.get(web_service.url + path, timeout=10)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
        policy = dict(p.strip().split(" ", 1) for p in response.headers["Content-Security-Policy"].split(";"))
        assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
        assert policy["style-src"] == "'self'" and policy["connect-src"] == "'self'"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    for endpoint in ("/", "/docs", "/web/<path:filename>"):
        assert web_service.metric("whisper_requests_total", endpoint=endpoint, status="200") >= 1, endpoint
