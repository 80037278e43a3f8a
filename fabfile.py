"""Fabric tasks: build and push the image, deploy it blue/green to the GPU VM, roll back, look at it.

    fab build [--allow-dirty]            docker build for linux/amd64, tag = commit id (+ latest)
    fab push [--tag T]                   to IMAGE's registry (Docker Hub by default) with DOCKERHUB_USERNAME /
                                         DOCKERHUB_TOKEN
    fab deploy [--tag T] [--host H]      blue/green on the host (default: the stack's `ip` output)
    fab rollback [--host H]              back to the recorded previous tag
    fab status | logs | tunnel           tag, health and uptime; container logs; Grafana + Prometheus

Knobs are environment variables (deploy/config.py); the flow lives in deploy/remote.py.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time

from fabric import Connection, task
from invoke.exceptions import Exit

from deploy import engine, remote, sshroute, steps
from deploy.config import ROOT, ConfigError, DeployConfig, git_tag, stack_outputs, with_stack_outputs

DEPLOY_DEFAULTS = DeployConfig()


def load_config(need_image: bool = True) -> DeployConfig:
    try:
        cfg = DeployConfig.from_env()
    except ConfigError as err:
        raise Exit(str(err)) from None
    if need_image and not cfg.image:
        raise Exit("set IMAGE (e.g. alice/whisper-gpu-service) or DOCKERHUB_USERNAME")
    return cfg


def open_host(c, host: str, need_image: bool = False) -> remote.Host:
    cfg = load_config(need_image)
    if host:
        cfg = cfg.replace(host=host)
    try:
        if not cfg.host:  # the stack decides HTTPS, serving without a key, and --gpus (none: a CPU-only host)
            cfg = with_stack_outputs(cfg, stack_outputs())
        # --host / DEPLOY_HOST as given (~/.ssh/config applies), else the stack's route (deploy/sshroute.py)
        target = sshroute.SshRoute(cfg.host) if cfg.host else sshroute.route()
    except ConfigError as err:
        raise Exit(str(err)) from None
    connect_kwargs = {"key_filename": target.key_file} if target.key_file else None  # None: fab -i
    conn = Connection(
        target.host,
        user=target.user,
        port=target.port,
        gateway=target.proxy_command,
        config=c.config,
        connect_kwargs=connect_kwargs,
    )
    return remote.Host(conn, cfg)


@task
def build(c, tag="", allow_dirty=False):
    """docker build the image for linux/amd64; tag = commit id, also `latest`. Refuses a dirty tree unless
    --allow-dirty. BASE_IMAGE swaps the base image; EXTRA_CA (a PEM file) is trusted by apt and pip during
    the build, as a build secret that no layer keeps."""
    cfg = load_config()
    commit = git_tag()
    if commit.endswith("-dirty") and not allow_dirty:
        raise Exit("the work tree has uncommitted changes; commit them or pass --allow-dirty")
    tag = tag or commit
    extra_ca = os.environ.get("EXTRA_CA", "")
    if extra_ca and not os.path.isfile(extra_ca):
        raise Exit(f"EXTRA_CA={extra_ca} is not a file (a PEM bundle of the CA certificates to trust)")
    args = {"WHISPER_MODEL": cfg.whisper_model, "WHISPER_ENGINE": cfg.whisper_engine, "WHISPER_BUILD": tag}
    if os.environ.get("BASE_IMAGE"):
        args["BASE_IMAGE"] = os.environ["BASE_IMAGE"]
    try:
        client = engine.buildkit_client()
    except engine.EngineError as err:
        raise Exit(str(err)) from None
    tags = [f"{cfg.image}:{tag}", f"{cfg.image}:latest"]
    command = engine.build_command(client, ROOT, tags, args, extra_ca=extra_ca)
    c.run(shlex.join(command), env=engine.BUILDKIT_ENV)


@task
def push(c, tag=""):
    """Push the tag and `latest` to IMAGE's registry (Docker Hub unless IMAGE names another host). The token
    goes to `docker login` on stdin, nowhere else."""
    cfg = load_config()
    user, token = os.environ.get("DOCKERHUB_USERNAME"), os.environ.get("DOCKERHUB_TOKEN")
    if not user or not token:
        raise Exit("set DOCKERHUB_USERNAME and DOCKERHUB_TOKEN (a Docker Hub access token)")
    tag = tag or git_tag()
    # A throwaway docker config: the login lives only as long as this push, not in ~/.docker.
    docker_config = tempfile.mkdtemp(prefix="whisper-push-")
    env = {**os.environ, "DOCKER_CONFIG": docker_config}
    try:
        login = subprocess.run(
            ["docker", *engine.login_args(cfg.image, user)],
            input=token,
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if login.returncode != 0:
            raise Exit(f"docker login failed: {login.stderr.strip().replace(token, '***')}")
        for ref in (f"{cfg.image}:{tag}", f"{cfg.image}:latest"):
            c.run(f"docker push {ref}", env={"DOCKER_CONFIG": docker_config})
    finally:
        shutil.rmtree(docker_config, ignore_errors=True)


@task
def deploy(c, tag="", host=""):
    """Blue/green deploy of the tag: start beside, /readyz, smoke test, switch port 80, stop the old one."""
    target = open_host(c, host, need_image=True)
    try:
        steps.deploy(target, tag or git_tag())
    except remote.DeployError as err:
        raise Exit(f"deploy failed: {err}") from None


@task
def rollback(c, host=""):
    """Deploy the recorded previous tag again (blue/green, same checks)."""
    target = open_host(c, host)
    try:
        steps.rollback(target)
    except remote.DeployError as err:
        raise Exit(f"rollback failed: {err}") from None


@task
def status(c, host=""):
    """The live tag, its container's health and uptime, /readyz through the proxy, the previous tag."""
    print("\n".join(steps.status_lines(open_host(c, host))))


@task
def logs(c, host="", lines=100, follow=False):
    """The live container's logs (--follow to stream them)."""
    target = open_host(c, host)
    current = target.read_state().get("current")
    if not current:
        raise Exit("nothing deployed yet")
    container = target.cfg.slot(current["color"]).container
    follow_flag = " --follow" if follow else ""
    target.conn.run(f"{target.sudo}docker logs --tail {int(lines)}{follow_flag} {container}")


@task
def tunnel(
    c,
    host="",
    grafana_port=DEPLOY_DEFAULTS.grafana_port,
    prometheus_port=DEPLOY_DEFAULTS.prometheus_port,
    seconds=0,
):
    """Forward the host's Grafana and Prometheus to the same local ports (DEPLOY_GRAFANA_PORT,
    DEPLOY_PROMETHEUS_PORT) until Ctrl-C (or --seconds)."""
    target = open_host(c, host)
    cfg, conn = target.cfg, target.conn
    with (
        conn.forward_local(int(grafana_port), remote_port=cfg.grafana_port),
        conn.forward_local(int(prometheus_port), remote_port=cfg.prometheus_port),
    ):
        print(f"Grafana http://127.0.0.1:{grafana_port}  Prometheus http://127.0.0.1:{prometheus_port}")
        print("Ctrl-C closes the tunnel", flush=True)
        deadline = time.monotonic() + float(seconds) if float(seconds) else None
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
