"""A person's way in: the transcription page at `/` and Swagger UI at `/docs`.

Both are static files served by the service itself: no build step and nothing fetched from the internet. The
page is static/index.html, app.js and app.css; it talks to the service's own /v1/audio endpoints like any
client. Swagger UI's assets come from the flask-swagger-ui wheel's dist/ folder (Swagger UI 5, which renders
OpenAPI 3.1); only its files are used, not its Flask blueprint, whose page has an inline script.

Everything this blueprint serves is open without an API key (http.OPEN_BLUEPRINTS): the pages hold no data,
and the API they call still wants the key.
"""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, send_from_directory

SWAGGER_UI = Path(flask_swagger_ui.__file__).parent / "dist"
ASSETS = "/web"  # the page's files, and Swagger UI's under /web/swagger-ui/

bp = Blueprint("web", __name__, static_folder="static", static_url_path=ASSETS)

# Scripts, styles and fonts only from this origin; no inline script or style, no eval; the page talks to this
# server only. (Scripts that set element.style go through the CSSOM, which the policy does not restrict.)
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # Swagger UI's icons are data: URLs in its stylesheet
        "media-src 'self' blob:",  # the page reads a chosen file's duration through an <audio> element
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
}


@bp.get("/")
def page():
    """The transcription page."""
    return bp.send_static_file("index.html")


@bp.get("/docs")
def docs():
    """Swagger UI on /openapi.json."""
    return bp.send_static_file("docs.html")


@bp.get(f"{ASSETS}/swagger-ui/<path:filename>")
def swagger_ui(filename: str):
    return send_from_directory(SWAGGER_UI, filename)


@bp.after_request
def _security_headers(response):
    response.headers.update(HEADERS)
    return response
