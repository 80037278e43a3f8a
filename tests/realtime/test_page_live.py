"""The page's live text in the real browser: Debian's headless Chromium, its fake microphone playing espeak-ng
speech (--use-file-for-fake-audio-capture), the page's Live text button, the key sent as OpenAI's browser
subprotocol, and the sentence's words shown while the server transcribes the turns."""

from __future__ import annotations

import numpy as np
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.realtime.conftest import KEY
from tests.web.conftest import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, console_errors
from tools import speech


@pytest.fixture
def speaking_browser(tmp_path):
    """Chromium whose microphone says one sentence, then a second of silence, over and over."""
    clip = speech.clip(tmp_path, 5, "en-us")
    padded = tmp_path / "mic.wav"
    speech.write_wav(padded, np.concatenate([speech.read_wav(clip.path), np.zeros(16000, np.float32)]))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--use-file-for-fake-audio-capture={padded}")
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver, clip
    driver.quit()


def test_live_text_shows_the_speakers_words(live, speaking_browser):
    driver, clip = speaking_browser
    driver.get(live.url + "/")
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "key-row").is_displayed())
    driver.find_element(By.ID, "key").send_keys(KEY)
    driver.find_element(By.ID, "live").click()
    final = "#live-text p[data-final]"
    # the second turn: the first may begin after the sentence does, as the capture starts up (a run here
    # once read "Keep on the cup and coffee ..." for "He poured a cup of coffee ..."); the second is whole
    try:
        WebDriverWait(driver, 90, 0.1).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, final)) >= 2)
    except TimeoutException:
        status = driver.find_element(By.ID, "live-status").text
        pytest.fail(f"not two completed turns; status {status!r}; console {driver.get_log('browser')}")
    text = driver.find_elements(By.CSS_SELECTOR, final)[1].text
    driver.find_element(By.ID, "live").click()  # stop
    assert speech.wer(clip.text, text) <= 0.5, (text, clip.text)
    assert not console_errors(driver)
