"""The host's pulls log in with a read-only pull token (DOCKERHUB_PULL_TOKEN), never with the push token.

deploy/remote.py's Host runs here through invoke's local Context (the same run() Fabric's Connection has), so
its docker login and pull are real, against the loopback registry with basic auth standing in for Docker Hub.
"""

from __future__ import annotations

import subprocess

import invoke
import pytest

from deploy import remote
from deploy.config import DeployConfig

PUSH_TOKEN = "dckr_pat_push-token-never-on-a-host"


class RecordingContext(invoke.Context):
    """invoke's local runner, keeping every command line and every stdin it was given."""

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def run(self, command, **kwargs):
        stream = kwargs.get("in_stream")
        self.seen.append(command + (" <stdin> " + stream.getvalue() if hasattr(stream, "getvalue") else ""))
        return super().run(command, **kwargs)


@pytest.fixture(scope="module")
def private_image(docker_engine, local_registry, tmp_path_factory) -> str:
    """A one-file image in the registry, which only a logged-in pull can fetch."""
    d = tmp_path_factory.mktemp("tiny")
    (d / "hello").write_text("hello\n")
    tar = subprocess.run(["tar", "-C", str(d), "-c", "hello"], capture_output=True, check=True).stdout
    subprocess.run(
        ["docker", "import", "-", "whisper-local/tiny:test"], input=tar, check=True, capture_output=True
    )
    ref = f"{local_registry.host}/test/tiny:1"
    local_registry.push(docker_engine, "whisper-local/tiny:test", ref)
    return ref


def host_for(env: dict[str, str]) -> tuple[remote.Host, RecordingContext]:
    context = RecordingContext()
    return remote.Host(context, DeployConfig.from_env(env)), context


def test_the_host_pulls_with_the_pull_token_and_never_sees_the_push_token(private_image, local_registry):
    env = {
        "IMAGE": private_image.rsplit(":", 1)[0],
        "DOCKERHUB_USERNAME": local_registry.user,
        "DOCKERHUB_PULL_TOKEN": local_registry.password,
        "DOCKERHUB_TOKEN": PUSH_TOKEN,
    }
    host, context = host_for(env)
    subprocess.run(["docker", "rmi", private_image], capture_output=True)
    with host.pull_login(private_image, env) as options:
        assert options[0] == "--config"
        host.pull(private_image, options)
    assert host.docker("image", "inspect", private_image, warn=True).ok
    assert any(local_registry.password in line for line in context.seen)  # the pull token, on stdin only
    assert not [line for line in context.seen if PUSH_TOKEN in line]
    subprocess.run(["docker", "rmi", private_image], capture_output=True)


def test_without_a_pull_token_the_pull_is_anonymous_and_a_refusal_names_the_setting(
    private_image, local_registry
):
    env = {
        "IMAGE": private_image.rsplit(":", 1)[0],
        "DOCKERHUB_USERNAME": "alice",
        "DOCKERHUB_TOKEN": PUSH_TOKEN,
    }
    host, context = host_for(env)
    subprocess.run(["docker", "rmi", private_image], capture_output=True)
    with host.pull_login(private_image, env) as options:
        assert options == []  # the push token is not a fallback
        with pytest.raises(remote.DeployError, match="set DOCKERHUB_PULL_TOKEN, a read-only token"):
            host.pull(private_image, options)
    assert not [line for line in context.seen if PUSH_TOKEN in line]
