"""A job's callback: when it ends, its job object is POSTed to its callback_url, signed as Standard Webhooks
specifies (headers webhook-id, webhook-timestamp, webhook-signature; the `standardwebhooks` library, secret
WEBHOOK_SECRET), and retried with exponential backoff for WEBHOOK_RETRY_SECONDS after the job ended.

Delivery is at least once: a crash between the POST and its record sends it again, with the same
webhook-id, which receivers use to drop duplicates. A callback_url whose host resolves to a private,
loopback, link-local or otherwise non-global address is refused (SSRF: the server's own network is not the
caller's to reach) unless WEBHOOK_ALLOW_PRIVATE=true; the connection goes to the address that was checked,
so a second DNS answer cannot swap it.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import socket
from datetime import UTC, datetime
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from ..errors import InvalidRequest

log = logging.getLogger("service.jobs.callbacks")
BACKOFF_FIRST, BACKOFF_MAX = 2.0, 300.0  # seconds before the 2nd attempt; the longest wait between two


class Refused(InvalidRequest):
    code = "callback_url_refused"


def backoff(attempts: int) -> float:
    """Seconds to wait after `attempts` failed attempts: 2, 4, 8, ... up to 5 minutes."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, attempts - 1))


def check_destination(url: str, allow_private: bool) -> str:
    """The address to connect to for url; Refused (400) when its host does not resolve, or any of its
    addresses is not a global one and private destinations are not allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("callback_url must be an http(s) URL with a host.", param="callback_url")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Refused(
            f"callback_url's host {parts.hostname!r} does not resolve.", param="callback_url"
        ) from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not allow_private:
        for address in addresses:
            mapped = getattr(address, "ipv4_mapped", None) or address
            if not mapped.is_global or mapped.is_multicast:
                raise Refused(
                    f"callback_url's host resolves to {address}, a private, loopback or link-local address: "
                    "refused (the server sets WEBHOOK_ALLOW_PRIVATE=true to allow it).",
                    param="callback_url",
                )
    return str(addresses[0])


def payload(job_object: dict) -> str:
    """The webhook's body: Standard Webhooks' recommended envelope around the job object."""
    ended = datetime.fromtimestamp(job_object["completed_at"] or 0, tz=UTC)
    event = {"type": f"audio.job.{job_object['status']}", "timestamp": ended.isoformat(), "data": job_object}
    return json.dumps(event, separators=(",", ":"))


def signed_headers(secret: str, message_id: str, body: str, now: datetime) -> dict[str, str]:
    signature = Webhook(secret).sign(message_id, now, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
        "User-Agent": "whisper-gpu-service-webhooks",
    }


def send(url: str, body: str, secret: str, message_id: str, timeout: float, allow_private: bool) -> int:
    """POST once; the HTTP status (2xx: delivered). Raises Refused or OSError."""
    address = check_destination(url, allow_private)
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname, parts.port, timeout=timeout)
    # connect to the checked address; TLS still verifies the URL's host name
    connection._create_connection = lambda where, *rest: socket.create_connection((address, where[1]), *rest)
    headers = signed_headers(secret, message_id, body, datetime.now(tz=UTC))
    try:
        path = parts.path or "/"
        connection.request("POST", path + (f"?{parts.query}" if parts.query else ""), body.encode(), headers)
        return connection.getresponse().status
    finally:
        connection.close()
