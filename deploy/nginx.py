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

from deploy.config import Slot

CONF_NAME = "whisper.conf"  # the one file in the proxy's conf.d
MAIN_CONF_NAME = "nginx.conf.main"  # HTTPS only: mounted as /etc/nginx/nginx.conf (load_module); not *.conf
ACME_STATE = (
    "/var/cache/nginx/acme-letsencrypt"  # account key, certificates: a host directory is mounted here
)
LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"

TEMPLATE = """\
# Written by `fab deploy`; rewritten on every switch. Live colour: {color}.
{https_head}upstream whisper_live {{
    server 127.0.0.1:{app_port};
    keepalive 16;
}}

server {{
    {listen}
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
    domain: str = "",
    https_port: int = 443,
    resolver: str = "169.254.169.254",
    acme_uri: str = LETSENCRYPT,
) -> str:
    """The proxy config that sends the public port (with a domain: 443, and 80 redirects) to `slot`."""
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
    return TEMPLATE.format(color=slot.color, app_port=slot.app_port, listen=listen, https_head=head)
