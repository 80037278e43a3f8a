"""The blue/green steps on a host (fab deploy, fab rollback, fab status): start the idle colour beside the
live one, wait for it, point the proxy at it, stop the old one; or give up and leave the live one serving."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from deploy.config import Slot
from deploy.remote import LOG_LINES, NO_KEY, DeployError, Host, log, now_utc


def deploy(host: Host, tag: str, image: str = "") -> dict:
    """Blue/green deploy of `tag` (of IMAGE, or the full `image` reference); returns the new state.
    Raises DeployError with the live colour intact."""
    with host.lock():
        return switch_to(host, tag, image or f"{host.cfg.image}:{tag}")


def switch_to(host: Host, tag: str, image: str) -> dict:
    """The deploy itself, under the host's lock."""
    cfg = host.cfg
    live = host.read_state().get("current")
    slot = cfg.other(live["color"] if live else None)
    if not cfg.allow_unauthenticated and not host.planned_env().get("API_KEYS"):
        raise DeployError(NO_KEY)
    with host.pull_login(image) as options:
        host.pull(image, options)
        host.pull(cfg.proxy_image, options, only_if_missing=True)
    settings = host.update_env_file()
    if settings.get("GRACEFUL_TIMEOUT"):  # the host's value, even when this shell does not set it
        try:
            host.cfg = cfg = cfg.replace(graceful_timeout=int(float(settings["GRACEFUL_TIMEOUT"])))
        except ValueError:
            raise DeployError(f"GRACEFUL_TIMEOUT={settings['GRACEFUL_TIMEOUT']!r} is not a number") from None
    beside = f" beside {live['color']} ({live['tag']})" if live else ""
    log(f"starting {slot.container} ({tag}){beside}")
    host.start(slot, image, tag)
    try:
        log(f"waiting up to {cfg.ready_timeout:g} s for {slot.container} to pass /readyz")
        host.wait_ready(slot)
        log(f"smoke test: one transcription on {slot.container}")
        host.smoke(slot.app_port)
        log(f"switching port {cfg.public_port} to {slot.container}")
        host.point_proxy(slot)
    except Exception as err:  # any failure, SSH errors included, must leave the live colour serving
        raise DeployError(abandon(host, slot, live, err)) from err
    release = {"tag": tag, "color": slot.color, "image": image, "deployed_at": now_utc()}
    state = {"current": release, "previous": live}
    host.write_state(state)
    if live:
        time.sleep(cfg.drain_delay)  # let the proxy's old workers hand their requests over
        log(f"stopping {cfg.slot(live['color']).container} (up to {cfg.stop_timeout} s to drain)")
        host.stop(cfg.slot(live["color"]).container, cfg.stop_timeout)
    log(f"{tag} is live on port {cfg.public_port} ({slot.container})")
    return state


def abandon(host: Host, slot: Slot, live: dict | None, err: BaseException) -> str:
    """Stop the failed new colour, keep or put the proxy on the live one; return the reason."""
    logs = host.logs_tail(slot.container)
    host.stop(slot.container, timeout=10)
    if live and host.proxy_target() != live["color"] and host.running(host.cfg.proxy_container):
        host.point_proxy(host.cfg.slot(live["color"]))
    still = f"{live['color']} ({live['tag']}) keeps serving" if live else "nothing was serving"
    reason = str(err) if isinstance(err, DeployError) else f"{type(err).__name__}: {err}"
    return (
        f"{reason}; {still} port {host.cfg.public_port}.\n"
        f"last {LOG_LINES} log lines of {slot.container}:\n{logs}"
    )


def rollback(host: Host) -> dict:
    """Deploy the recorded previous tag through the same blue/green path."""
    previous = host.read_state().get("previous")
    if not previous:
        raise DeployError(f"no previous release recorded in {host.cfg.state_file}")
    log(f"rolling back to {previous['tag']}")
    return deploy(host, previous["tag"], previous["image"])


def status_lines(host: Host) -> list[str]:
    """Tag, health and uptime of the live colour, and the recorded previous tag."""
    cfg = host.cfg
    state = host.read_state()
    current, previous = state.get("current"), state.get("previous")
    if not current:
        return [f"nothing deployed (no {cfg.state_file})"]
    container = cfg.slot(current["color"]).container
    info = host.inspect(container) or {"State": {"Status": "missing"}}
    code, body = host.http_get(cfg.public_port, "/readyz")
    return [
        f"live:      {current['tag']} ({container}, image {current['image']})",
        f"deployed:  {current['deployed_at']}",
        f"container: {info['State']['Status']}, up {uptime(info['State'].get('StartedAt'))}",
        f"readyz:    {code or 'no answer'} on port {cfg.public_port} {body[:200]}".rstrip(),
        f"previous:  {previous['tag'] if previous else '-'}",
    ]


def uptime(started_at: str | None) -> str:
    """'3h 12m 5s' since docker's StartedAt (RFC 3339 with nanoseconds)."""
    if not started_at:
        return "-"
    started = datetime.strptime(started_at[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - started).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60}m {rest % 60}s"
