"""Browser tests: Debian's headless Chromium driven by Selenium against real gunicorn servers on loopback.

Chromium runs with a fresh profile and without any of its background traffic (no sync, updates, QUIC or
first-run fetches): the pages under test must work offline, and the tests only ever talk to 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import launch

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,1000",
    "--use-fake-ui-for-media-stream",  # the microphone: a fake device, allowed without a prompt
    "--use-fake-device-for-media-stream",
]
PAGE_LOAD_SECONDS = 30
SCRIPT_SECONDS = 30


@pytest.fixture(scope="session")
def web_model(tiny_en) -> dict[str, str]:
    """The model every browser test transcribes with, as server settings: the embedded real tiny.en with
    the default VAD, as `make run` serves it. The assertions compare what the page shows and saves with what
    the API returns for the same file, so they hold for any model. WEB_TEST_MODEL=/path serves another."""
    if os.environ.get("WEB_TEST_MODEL"):
        return {"WHISPER_MODEL": os.environ["WEB_TEST_MODEL"]}
    return {"WHISPER_MODEL": str(tiny_en), "VAD": "true"}


@pytest.fixture(scope="session")
def multilingual_model(checkpoint, tmp_path_factory) -> dict[str, str]:
    """For translation (tiny.en cannot translate): the suite's random multilingual checkpoint, made
    repeatable. Random weights are so unsure that each window falls back to sampling; with the token
    embedding scaled up the decoder is sure of itself (greedy, no fallback), and WHISPER_FORCE_TOKENS keeps
    each window to a few tokens, short enough not to trip the repetition check."""
    state = torch.load(checkpoint, weights_only=True)
    state["model_state_dict"]["decoder.token_embedding.weight"] *= 50
    path = tmp_path_factory.mktemp("web-model") / "test.pt"
    torch.save(state, path)
    return {"WHISPER_MODEL": str(path), "WHISPER_FORCE_TOKENS": "6", "VAD": "false"}


@pytest.fixture(scope="module")
def web_service(checkpoint, web_model, tmp_path_factory):
    """One server with default settings for a test module."""
    tmp = tmp_path_factory.mktemp("web-service")
    server = launch(checkpoint, tmp, **web_model)
    yield server
    server.stop()
    assert not server.tracebacks(), server.tracebacks()


@pytest.fixture
def start_web_service(start_service, web_model):
    """Factory: start_web_service(ENV=value, ...) -> a ready server with the web model and those settings,
    stopped (and checked for tracebacks) after the test by tests/conftest.py's start_service."""
    return lambda **env: start_service(**{**web_model, **env})


@pytest.fixture
def downloads(tmp_path) -> Path:
    path = tmp_path / "downloads"
    path.mkdir()
    return path


@pytest.fixture
def browser(tmp_path, downloads):
    """A fresh headless Chromium (own profile, downloads into `downloads`), closed after the test."""
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
        "chromium and chromium-driver are missing: run `make system-deps` (Debian packages)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: Selenium Manager (which would look for drivers online) never runs
    driver = webdriver.Chrome(
        service=DriverService(CHROMEDRIVER, log_output=str(tmp_path / "driver.log")), options=options
    )
    driver.set_page_load_timeout(PAGE_LOAD_SECONDS)
    driver.set_script_timeout(SCRIPT_SECONDS)
    downloads_allowed = {"behavior": "allow", "downloadPath": str(downloads)}
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", downloads_allowed)
    yield driver
    driver.quit()


def console_errors(driver) -> list[str]:
    """The browser console's errors so far (CSP violations, failed loads, uncaught exceptions)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait(driver, condition, seconds: float, what: str):
    """Wait for condition(driver) to be truthy, at most `seconds`; fail naming `what`."""
    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(condition, message=what)


def screenshot(driver, path: Path, readme: bool = False) -> Path:
    """Save a screenshot of the whole page. With WEB_SCREENSHOTS_TO_DOCS=1 the README's pictures
    (readme=True) are copied to docs/ as well; WEB_TEST_MODEL=<a real model> puts real words in them."""
    time.sleep(0.4)  # let the page's short fade-ins finish
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 4000), "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    path.write_bytes(base64.b64decode(shot["data"]))
    if readme and os.environ.get("WEB_SCREENSHOTS_TO_DOCS") == "1":
        shutil.copy(path, Path(__file__).resolve().parents[2] / "docs" / path.name)
    return path


def page_state(driver) -> str:
    return driver.find_element("id", "app").get_attribute("data-state")


def as_json(text: str) -> dict:
    return json.loads(text)
