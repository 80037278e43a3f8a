"""API keys (API_KEYS): a Bearer token, or the password of HTTP Basic (never its user name), checked in
constant time against every key; a key is known elsewhere only by its id."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from flask import Flask, current_app, g, request

from .. import metrics
from ..errors import Unauthorized
from . import probes

OPEN_PATHS = (*probes.PATHS, "/openapi.json")  # reachable without an API key
URL_FORM = "http://whisper:<key>@host:5000/"  # any user name; requests sends no credentials without one
OPEN_BLUEPRINTS = ("web",)  # the page at /, /docs and their static files; the API they call wants the key
# OpenAI's browser clients cannot set headers on a WebSocket: they offer the key as a subprotocol, beside
# "realtime" (openai-node's beta/realtime/websocket.ts; the SDK's realtime WebSocket guide)
KEY_SUBPROTOCOL = "openai-insecure-api-key."


def register(app: Flask) -> None:
    app.before_request(authenticate)


def authenticate() -> None:
    keys = [k.get_secret_value() for k in current_app.config["SETTINGS"].api_keys]
    if not keys or request.path in OPEN_PATHS or request.blueprint in OPEN_BLUEPRINTS:
        return
    header = request.headers.get("Authorization", "") or _subprotocol_key()
    # compare against every key, always, in constant time: no early exit that leaks which prefix matched
    matched = None
    for token in _credentials(header):
        for key in keys:
            if hmac.compare_digest(token.encode(), key.encode()):
                matched = key
    if matched is not None:
        g.key_id = key_id(matched)
    else:
        metrics.REJECTED.labels("unauthorized").inc()
        raise Unauthorized(
            "Missing or invalid API key: send it as 'Authorization: Bearer <key>' or in the URL as a "
            f"password, {URL_FORM} (a key as the user name is refused: proxies log user names)."
            if header
            else "This server requires an API key: send 'Authorization: Bearer <key>', or put it in the URL "
            f"as a password, {URL_FORM}, where a client has no key setting (Python's requests sends nothing "
            "for a key without a user name, http://<key>@host/)."
        )


def key_id(key: str) -> str:
    """A key's id in metrics and the fair share: the first 10 hex digits of its SHA-256, never the key.
    An operator finds a key's id with `printf %s "$KEY" | sha256sum | cut -c1-10`."""
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def _subprotocol_key() -> str:
    """A WebSocket's key offered as subprotocol `openai-insecure-api-key.<key>`, as a Bearer header."""
    offered = request.headers.get("Sec-WebSocket-Protocol", "").split(",")
    keys = [p.strip()[len(KEY_SUBPROTOCOL) :] for p in offered if p.strip().startswith(KEY_SUBPROTOCOL)]
    return f"Bearer {keys[0]}" if keys else ""


def _credentials(header: str) -> list[str]:
    """The API key candidates in an Authorization header: a Bearer token, or HTTP Basic's password (what a
    URL such as http://whisper:KEY@host:9000 sends; whisper-asr-webservice clients like Bazarr have no key
    setting). Never Basic's user name (what curl sends for http://KEY@host:9000): proxies log user names
    (nginx's $remote_user is in its default access log), so a key there would end up in logs."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return [value.strip()]
    if scheme.lower() != "basic":
        return [""]
    try:
        _user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return [""]
    return [password]
