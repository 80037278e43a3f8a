"""The reverse proxy in front of the blue/green pair.

Why nginx: `nginx -s reload` is graceful. The master keeps the listening socket open, starts workers with the
new upstream, and lets the old workers finish the requests they hold, so switching colours never refuses a
connection and never cuts a running transcription. The proxy runs with host networking and its config
only proxies the public port to the live colour's loopback port: metrics ports stay on 127.0.0.1.
"""

from __future__ import annotations

from deploy.config import Slot

CONF_NAME = "whisper.conf"  # the one file in the proxy's conf.d

TEMPLATE = """\
# Written by `fab deploy`; rewritten on every switch. Live colour: {color}.
upstream whisper_live {{
    server 127.0.0.1:{app_port};
    keepalive 16;
}}

server {{
    listen {public_port};
    server_tokens off;
    access_log off;  # the service logs one line per request itself

    # The service caps upload size and audio length itself (413 with an OpenAI error body), and long
    # audio takes minutes: stream uploads through and wait as long as the service may.
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_read_timeout 1800s;
    proxy_send_timeout 1800s;

    location / {{
        proxy_pass http://whisper_live;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Request-Id $request_id;
    }}
}}
"""


def render(slot: Slot, public_port: int) -> str:
    """The proxy config that sends the public port to `slot`."""
    return TEMPLATE.format(color=slot.color, app_port=slot.app_port, public_port=public_port)
