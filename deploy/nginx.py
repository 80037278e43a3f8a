"""The reverse proxy in front of the blue/green pair.

Why nginx: `nginx -s reload` is graceful. The master keeps the listening socket open, starts workers with the
new upstream, and lets the old workers finish the requests they hold, so switching colours never refuses a
connection and never cuts a running transcription. The proxy runs with host networking and its config
only proxies the public port to the live colour's loopback port: metrics ports stay on 127.0.0.1.

HTTPS (a stack `domain`): nginx gets its certificate itself with its ACME module (ngx_http_acme_module,
nginx/nginx-acme, shipped in the official nginx images since 1.29.1; nginx:1.30 has module 0.4.1), from
Let's Encrypt over HTTP-01, and renews it itself: no certbot, no reload for renewals, and the switch stays
the same graceful reload. Port 80 then answers the ACME challenges and redirects everything else to https://;
the API is served on 443, and on 127.0.0.1:80 for the deploy's own checks.
"""

from __future__ import annotations

import json

from deploy.config import SERVICE_DEFAULTS, Slot

CONF_NAME = "whisper.conf"  # the one file in the proxy's conf.d
# Slow and greedy clients (docs/reliability.md): the same limits as the service's own defaults
HEADER_TIMEOUT = int(SERVICE_DEFAULTS.header_timeout)  # s for a request's headers
BODY_TIMEOUT = int(SERVICE_DEFAULTS.upload_idle_timeout)  # s between two reads of a request body
CONNECTIONS_PER_CLIENT = 32  # requests one client address may have open at once


def _error(message: str, type_: str, code: str, param: str | None = None) -> str:
    """An OpenAI-shaped error body, as the service writes it, for the answers nginx gives itself."""
    return json.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


TOO_LARGE = _error(
    "The upload is larger than the server accepts (MAX_UPLOAD_MB).",
    "invalid_request_error",
    "file_too_large",
    "file",
)
TOO_MANY = _error(
    "Too many connections from this address; retry shortly.", "rate_limit_error", "too_many_connections"
)

MAIN_CONF_NAME = "nginx.conf.main"  # HTTPS only: mounted as /etc/nginx/nginx.conf (load_module); not *.conf
ACME_STATE = (
    "/var/cache/nginx/acme-letsencrypt"  # account key, certificates: a host directory is mounted here
)
LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"

TEMPLATE = """\
# Written by `fab deploy`; rewritten on every switch. Live colour: {color}.
{https_head}limit_conn_zone $binary_remote_addr zone=whisper_per_client:10m;

upstream whisper_live {{
    server 127.0.0.1:{app_port};
    keepalive 16;
}}

server {{
    {listen}
    server_tokens off;
    access_log off;  # the service logs one line per request itself

    # Uploads are read in full here before the service sees them: a client that trickles its body holds
    # an nginx connection (cheap), never a service thread. Bodies over MAX_UPLOAD_MB get 413 here.
    client_max_body_size {max_body_bytes};
    proxy_request_buffering on;
    client_header_timeout {header_timeout}s;
    client_body_timeout {body_timeout}s;
    limit_conn whisper_per_client {per_client};
    limit_conn_status 429;
    error_page 413 = @too_large;
    error_page 429 = @too_many;
    # Responses are buffered too (a slow reader holds nginx, not the service), except those that say
    # X-Accel-Buffering: no, as the streaming transcription (SSE) does: its events pass through at once.
    proxy_buffering on;
    # Long audio takes minutes: wait as long as the service may.
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

    # Live sessions (OpenAI's Realtime protocol, docs/api.md): the WebSocket upgrade passes through, and
    # nothing is buffered. The service pings every 20 s, so proxy_read_timeout never ends a live session;
    # a reload (the blue/green switch) leaves upgraded connections on the old workers until they end.
    location = /v1/realtime {{
        proxy_pass http://whisper_live;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Request-Id $request_id;
        proxy_buffering off;
    }}

    location @too_large {{
        default_type application/json;
        return 413 '{too_large}';
    }}

    location @too_many {{
        default_type application/json;
        add_header Retry-After 5 always;
        return 429 '{too_many}';
    }}
}}
"""


HTTPS_HEAD = """\
resolver {resolver} ipv6=off;  # the ACME module looks up Let's Encrypt; GCE's metadata server answers DNS

acme_issuer letsencrypt {{
    uri {acme_uri};
    state_path {acme_state};
    accept_terms_of_service;
}}
acme_shared_zone zone=ngx_acme_shared:1M;

# Port 80: the ACME module answers HTTP-01 challenges here; everything else goes to https://.
server {{
    listen {public_port};
    server_tokens off;
    location / {{
        return 301 https://{domain}$request_uri;
    }}
}}

"""
HTTPS_LISTEN = """\
listen {https_port} ssl;
    listen 127.0.0.1:{public_port};  # fab deploy's own checks: plain HTTP on loopback only
    server_name {domain};
    acme_certificate letsencrypt;
    ssl_certificate $acme_certificate;
    ssl_certificate_key $acme_certificate_key;
    ssl_certificate_cache max=2;"""

MAIN_CONF = """\
# Written by `fab deploy` for HTTPS: the official image's nginx.conf plus the ACME module.
load_module modules/ngx_http_acme_module.so;
user nginx;
worker_processes auto;
error_log /var/log/nginx/error.log notice;
pid /run/nginx.pid;
events {
    worker_connections 1024;
}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 65;
    include /etc/nginx/conf.d/*.conf;
}
"""


def render(
    slot: Slot,
    public_port: int,
    max_upload_mb: float = SERVICE_DEFAULTS.max_upload_mb,
    *,
    domain: str = "",
    https_port: int = 443,
    resolver: str = "169.254.169.254",
    acme_uri: str = LETSENCRYPT,
    header_timeout: int = HEADER_TIMEOUT,
    body_timeout: int = BODY_TIMEOUT,
    per_client: int = CONNECTIONS_PER_CLIENT,
) -> str:
    """The proxy config that sends the public port (with a domain: 443, and 80 redirects) to `slot`;
    bodies up to the service's MAX_UPLOAD_MB, slow and greedy clients limited."""
    if not domain:
        listen, head = f"listen {public_port};", ""
    else:
        listen = HTTPS_LISTEN.format(https_port=https_port, public_port=public_port, domain=domain)
        head = HTTPS_HEAD.format(
            resolver=resolver,
            acme_uri=acme_uri,
            acme_state=ACME_STATE,
            public_port=public_port,
            domain=domain,
        )
    return TEMPLATE.format(
        color=slot.color,
        app_port=slot.app_port,
        listen=listen,
        https_head=head,
        max_body_bytes=int(max_upload_mb * 1024 * 1024),
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        per_client=per_client,
        too_large=TOO_LARGE,
        too_many=TOO_MANY,
    )
