"""Headers every API response carries, and redirects that never name a host.

`X-Content-Type-Options: nosniff` (a transcript is never run as a script or page) and `Cache-Control:
no-store` (transcripts and errors are private to their caller) on everything but the web pages, which set
their own. werkzeug's redirects (`//v1/models` -> `/v1/models`) build an absolute URL from the client's
`Host` header; they are answered with the path alone.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from flask import Flask, Response, request

API_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def register(app: Flask) -> None:
    app.after_request(secure)


def secure(response: Response) -> Response:
    if request.blueprint != "web":
        for name, value in API_HEADERS.items():
            response.headers.setdefault(name, value)
    location = response.headers.get("Location")
    if location and response.status_code in (301, 302, 303, 307, 308):
        response.headers["Location"] = relative(location)
    return response


def relative(location: str) -> str:
    """Only the path, query and fragment of a redirect's target; a path starting `//` keeps one slash (a
    browser would read `//host/...` as another host)."""
    parts = urlsplit(location)
    path = "/" + (parts.path or "/").lstrip("/")
    return urlunsplit(("", "", path, parts.query, parts.fragment))
