"""The proxy's side of a deploy host (remote.Host mixes it in): its config pointed at a colour, its
container, and the check that the public port answers."""

from __future__ import annotations

import posixpath
import shlex
import time

from deploy import nginx
from deploy.config import Slot

PUBLIC_CHECK_SECONDS = 30.0  # how long the proxy may take to answer after a start or reload


class DeployError(Exception):
    """The deploy stopped; the message says why and what still serves traffic."""


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


class ProxyOps:
    """Needs the host's cfg, sh, docker, read_file, write_file, running, inspect, http_get and sudo."""

    def point_proxy(self, slot: Slot) -> None:
        """Send the public port to `slot`: start the proxy on first use, else rewrite + graceful reload."""
        cfg = self.cfg
        path = posixpath.join(cfg.proxy_dir, nginx.CONF_NAME)
        before = self.read_file(path)
        conf = nginx.render(
            slot, cfg.public_port, cfg.max_upload_mb, domain=cfg.domain, https_port=cfg.https_port
        )
        self.write_file(path, conf, mode="644")
        if cfg.domain:
            self.write_file(posixpath.join(cfg.proxy_dir, nginx.MAIN_CONF_NAME), nginx.MAIN_CONF, mode="644")
        if self.running(cfg.proxy_container) and self.proxy_mounts_match():
            check = self.docker("exec", cfg.proxy_container, "nginx", "-t", warn=True)
            if check.failed:
                if before is not None:
                    self.write_file(path, before, mode="644")
                raise DeployError(f"nginx rejected the new config: {last_line(check.stderr)}")
            self.docker("exec", cfg.proxy_container, "nginx", "-s", "reload")
        else:
            self.start_proxy()
        self.wait_public()

    def proxy_target(self) -> str | None:
        """The colour the proxy config sends traffic to (None before the first deploy)."""
        conf = self.read_file(posixpath.join(self.cfg.proxy_dir, nginx.CONF_NAME)) or ""
        for slot in (self.cfg.blue, self.cfg.green):
            if f"server 127.0.0.1:{slot.app_port};" in conf:
                return slot.color
        return None

    def proxy_mounts_match(self) -> bool:
        """Whether the running proxy has the mounts HTTPS needs exactly when a domain is set (a stack that
        gains or loses `domain` gets a new proxy container once: a reload cannot add a mount)."""
        mounts = (self.inspect(self.cfg.proxy_container) or {}).get("Mounts") or []
        has_main = any(m.get("Destination") == "/etc/nginx/nginx.conf" for m in mounts)
        return has_main == bool(self.cfg.domain)

    def start_proxy(self) -> None:
        cfg = self.cfg
        self.docker("rm", "--force", cfg.proxy_container, warn=True)
        https = []
        if cfg.domain:  # nginx.conf with load_module, and the ACME state kept across restarts
            self.sh(f"{self.sudo}install -d -m 0700 -o 101 -g 101 {shlex.quote(cfg.acme_dir)}")
            https = [
                "--volume", f"{posixpath.join(cfg.proxy_dir, nginx.MAIN_CONF_NAME)}:/etc/nginx/nginx.conf:ro",
                "--volume", f"{cfg.acme_dir}:{nginx.ACME_STATE}",
            ]  # fmt: skip
        result = self.docker(
            "run", "--detach", "--name", cfg.proxy_container,
            "--network", "host", "--restart", "unless-stopped",
            "--volume", f"{cfg.proxy_dir}:/etc/nginx/conf.d:ro",
            *https,
            cfg.proxy_image,
            warn=True,
        )  # fmt: skip
        if result.failed:
            raise DeployError(f"the proxy did not start: {last_line(result.stderr)}")

    def wait_public(self) -> None:
        last = "no answer"
        for _ in range(int(PUBLIC_CHECK_SECONDS / 0.5)):
            code, body = self.http_get(self.cfg.public_port, "/readyz")
            if code == 200:
                return
            last = f"{code} {body[:200]}" if code else "no answer"
            time.sleep(0.5)
        raise DeployError(f"port {self.cfg.public_port} did not answer /readyz with 200 ({last})")
