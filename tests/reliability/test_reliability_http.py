"""HTTP hardening through the real gunicorn (#37): the server's own refusals in OpenAI's error shape, form
limits that name what is too large, echoed names cut, nosniff and no-store, no 100 Continue before the key
is checked, and redirects that never name a host."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest
import requests
from reliability_helpers import API_KEY, assert_error, auth

ENDPOINT = "/v1/audio/transcriptions"


def address(service) -> tuple[str, int]:
    parts = urlsplit(service.url)
    return parts.hostname, parts.port


def exchange(service, raw: bytes, timeout: float = 30) -> bytes:
    """Send raw bytes, then read until the server closes (every refusal here closes the connection)."""
    with socket.create_connection(address(service), timeout=timeout) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def json_error(answer: bytes, status: int) -> dict:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} "), answer[:300]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["content-type"] == "application/json", headers
    assert headers["x-content-type-options"] == "nosniff"
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"], error
    return error


REFUSALS = {
    "long-url": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "too-many-headers": (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 150 + b"\r\n", 431),
    "huge-head": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 70000 + b"\r\n\r\n", 431),
    "malformed": (b"GARBAGE\r\n\r\n", 400),
    "bad-version": (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    "transfer-coding": (
        b"POST /v1/models HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: brotli, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_the_servers_own_refusals_are_error_json(guarded, name):
    raw, status = REFUSALS[name]
    json_error(exchange(guarded, raw), status)


def test_a_head_that_never_ends_gets_408_json(start_service):
    server = start_service(HEADER_TIMEOUT="1", WARMUP="false")
    error = json_error(exchange(server, b"GET /readyz HTTP/1.1\r\nHost: x\r\n"), 408)
    assert "HEADER_TIMEOUT" in error["message"]


def test_more_than_1000_parts_is_a_form_limit_not_the_file(guarded):
    files = [("x", (None, "1"))] * 1001
    error = assert_error(requests.post(guarded.url + ENDPOINT, files=files, headers=auth(), timeout=60), 413)
    assert error["code"] == "form_too_large" and error["param"] is None, error
    assert "1000 parts" in error["message"]


def test_a_text_field_over_a_mib_is_a_form_limit_not_the_file(guarded):
    files = {"prompt": (None, "p" * (1024 * 1024 + 10))}
    error = assert_error(requests.post(guarded.url + ENDPOINT, files=files, headers=auth(), timeout=60), 413)
    assert error["code"] == "form_too_large" and "1024 KiB" in error["message"], error


def test_an_unknown_field_name_is_cut_in_the_error(guarded, audio_dir):
    name = "n" * 100_000
    with open(audio_dir / "speech.wav", "rb") as f:
        resp = requests.post(
            guarded.url + ENDPOINT, files={"file": f}, data={name: "1"}, headers=auth(), timeout=60
        )
    error = assert_error(resp, 400, "unsupported_parameter")
    assert len(resp.content) < 1000 and error["param"].startswith("nnnn"), len(resp.content)


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/nope", "/openapi.json", "/readyz"])
@pytest.mark.parametrize("key", [API_KEY, None])
def test_api_responses_are_nosniff_and_no_store(guarded, path, key):
    resp = requests.get(guarded.url + path, headers=auth(key) if key else {}, timeout=30)
    assert resp.headers["X-Content-Type-Options"] == "nosniff", (resp.status_code, resp.headers)
    assert resp.headers["Cache-Control"] == "no-store", (resp.status_code, resp.headers)


def test_the_page_keeps_its_own_headers(guarded):
    resp = requests.get(guarded.url + "/", timeout=30)
    assert resp.status_code == 200 and "Content-Security-Policy" in resp.headers
    assert "no-store" not in resp.headers.get("Cache-Control", "")  # static assets may be cached


def expect_continue_head(key: str | None, length: int) -> bytes:
    head = f"POST {ENDPOINT} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {length}\r\n"
    head += "Content-Type: multipart/form-data; boundary=b\r\n"
    if key:
        head += f"Authorization: Bearer {key}\r\n"
    return (head + "\r\n").encode()


def first_answer(sock) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_100_continue_comes_only_after_the_key_is_checked(guarded):
    body = b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--b--\r\n'
    with socket.create_connection(address(guarded), timeout=30) as sock:
        sock.sendall(expect_continue_head(None, len(body)))
        answer = first_answer(sock)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    with socket.create_connection(address(guarded), timeout=30) as sock:
        sock.sendall(expect_continue_head(API_KEY, len(body)))
        assert first_answer(sock).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        final = first_answer(sock)
    assert final.startswith(b"HTTP/1.1 400 "), final[:200]  # the key passed; the file is missing


def test_a_double_slash_redirect_names_no_host(guarded):
    resp = requests.get(
        guarded.url + "//v1//models",
        headers={**auth(), "Host": "attacker.example"},
        allow_redirects=False,
        timeout=30,
    )
    assert resp.status_code in (301, 308), resp.status_code
    assert resp.headers["Location"] == "/v1/models", resp.headers
