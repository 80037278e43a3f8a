"""The official `openai` client pointed at the shared server (tests/conftest.py's `service`)."""

from __future__ import annotations

import openai
import pytest


@pytest.fixture(scope="module")
def client(service):
    return openai.OpenAI(base_url=service.url + "/v1", api_key="unused", max_retries=0, timeout=120)
