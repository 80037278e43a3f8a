"""`fab build` and `fab push` with the real Docker engine and a real registry (docker-registry with basic auth
on loopback, standing in for Docker Hub): the image is built for linux/amd64 from the real Dockerfile, and the
token reaches `docker login` on stdin and appears in no process's command line, no log line and no file left
behind."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from deploy.config import git_tag
from tests.deploy.conftest import REPOSITORY, watch_command_lines
from tests.docker_engine import CA_BUNDLE, image_build_args

ROOT = Path(__file__).resolve().parents[2]
FAB = str(Path(sys.executable).with_name("fab"))
pytestmark = pytest.mark.timeout(600, func_only=True)  # the fixtures bound their own builds


@pytest.fixture
def laptop(tmp_path, docker_engine, local_registry, service_image, base_image):
    """An operator's shell: the real docker, a fresh HOME and TMPDIR, IMAGE in the loopback registry, and
    the build settings of the image tests (so the build reuses their cached layers)."""
    (tmp_path / "home").mkdir()
    (tmp_path / "tmp").mkdir()
    args = image_build_args(base_image)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "tmp"),
        "IMAGE": f"{local_registry.host}/{REPOSITORY}",
        "DOCKERHUB_USERNAME": local_registry.user,
        "DOCKERHUB_TOKEN": local_registry.password,
        "WHISPER_MODEL": args["WHISPER_MODEL"],
        "BASE_IMAGE": args["BASE_IMAGE"],
        **({"EXTRA_CA": str(CA_BUNDLE)} if CA_BUNDLE.is_file() else {}),
    }
    built: list[str] = []
    yield tmp_path, env, local_registry, built
    for ref in built:
        docker_engine.docker("rmi", ref, check=False)


def fab(env: dict, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FAB, "-r", str(ROOT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def registry_tags(registry) -> list[str]:
    answer = requests.get(
        f"http://{registry.host}/v2/{REPOSITORY}/tags/list",
        auth=(registry.user, registry.password),
        timeout=30,
    )
    return answer.json().get("tags") or [] if answer.status_code == 200 else []


def test_build_then_push_keeps_the_token_out_of_argv_logs_and_disk(laptop, docker_engine):
    tmp_path, env, registry, built = laptop
    token, image = env["DOCKERHUB_TOKEN"], env["IMAGE"]
    tag = "pushed-by-test"  # the same each run: the registry's garbage collection frees the last one's layers
    leaks: list[str] = []
    with watch_command_lines(token, leaks):
        done = fab(env, "build", "--tag", tag, "--allow-dirty")
        built += [f"{image}:{tag}", f"{image}:latest"]
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        pushed = fab(env, "push", "--tag", tag)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr

    info = docker_engine.inspect(f"{image}:{tag}")
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"  # --platform linux/amd64
    assert info["Id"] == docker_engine.inspect(f"{image}:latest")["Id"]
    assert f"WHISPER_BUILD={tag}" in info["Config"]["Env"]  # /readyz reports it: the deploy checks it
    assert "WHISPER_MODEL=build/tiny.en.pt" in info["Config"]["Env"]
    assert {tag, "latest"} <= set(registry_tags(registry))  # in the registry, by the real push
    # the token went to login on stdin: no process held it in its command line (/proc/*/cmdline) ...
    assert leaks == []
    assert token not in pushed.stdout + pushed.stderr + done.stdout + done.stderr
    # ... and the login lived in a throwaway DOCKER_CONFIG that is gone now
    assert not (tmp_path / "home" / ".docker" / "config.json").exists()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_leak_detector_sees_a_token_passed_in_argv(laptop):
    """The control for the test above: a token on a command line is caught."""
    _, env, registry, _ = laptop
    leaks: list[str] = []
    with watch_command_lines(env["DOCKERHUB_TOKEN"], leaks):
        subprocess.run(
            [
                "sh",
                "-c",
                f"echo {env['DOCKERHUB_TOKEN']} | docker login {registry.host} -u alice"
                " --password-stdin; sleep 0.5",
            ],
            env={**env, "DOCKER_CONFIG": env["TMPDIR"]},
            check=True,
            capture_output=True,
            timeout=60,
        )
    assert leaks and env["DOCKERHUB_TOKEN"] in leaks[0]


def test_push_without_credentials_says_what_to_set(laptop):
    _, env, registry, _ = laptop
    del env["DOCKERHUB_TOKEN"]
    result = fab(env, "push", "--tag", "no-credentials")
    assert result.returncode == 1
    assert "set DOCKERHUB_USERNAME and DOCKERHUB_TOKEN" in result.stderr
    assert "no-credentials" not in registry_tags(registry)


def test_push_of_a_tag_never_built_fails(laptop):
    _, env, _, _ = laptop
    result = fab(env, "push", "--tag", "never-built")
    assert result.returncode != 0
    assert "An image does not exist locally with the tag" in result.stdout + result.stderr  # docker's words
    assert env["DOCKERHUB_TOKEN"] not in result.stdout + result.stderr


def test_a_wrong_token_fails_at_login_without_echoing_it(laptop):
    _, env, _, _ = laptop
    env["DOCKERHUB_TOKEN"] = "wrong-" + secrets.token_hex(8)
    result = fab(env, "push", "--tag", "never-built")
    assert result.returncode == 1
    assert "docker login failed" in result.stderr and "unauthorized" in result.stderr.lower()
    assert env["DOCKERHUB_TOKEN"] not in result.stdout + result.stderr


def test_the_tag_is_the_commit_and_says_dirty(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f").write_text("1")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    subprocess.run([*git, "tag", "v1.0"], check=True)  # tags do not replace the commit id
    sha = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout
    assert git_tag(repo) == sha.strip()
    (repo / "f").write_text("2")
    assert git_tag(repo) == sha.strip() + "-dirty"


def test_build_refuses_a_dirty_tree_unless_told(laptop, monkeypatch, docker_engine):
    _, env, _, _ = laptop
    import fabfile

    monkeypatch.setattr(fabfile, "git_tag", lambda: "0123456789ab-dirty")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from invoke import Context
    from invoke.exceptions import Exit

    for tag in ("", "t9"):  # an explicit tag does not hide uncommitted changes
        with pytest.raises(Exit, match="uncommitted changes"):
            fabfile.build(Context(), tag=tag)
    assert not docker_engine.image_exists(f"{env['IMAGE']}:t9")


def test_an_extra_ca_that_is_not_a_file_is_refused_before_docker(laptop, monkeypatch):
    _, env, _, _ = laptop
    import fabfile

    monkeypatch.setattr(fabfile, "git_tag", lambda: "0123456789ab")
    for key, value in {**env, "EXTRA_CA": "/nonexistent/ca.pem"}.items():
        monkeypatch.setenv(key, value)
    from invoke import Context
    from invoke.exceptions import Exit

    with pytest.raises(Exit, match="EXTRA_CA=/nonexistent/ca.pem is not a file"):
        fabfile.build(Context(), tag="t9")


def test_build_targets_linux_amd64_and_passes_the_ca_as_a_secret(laptop, monkeypatch):
    """Google's GPU VMs are x86-64: an arm64 laptop must not build an arm64 image. The command fab build runs
    (the real build above runs the same one, on an amd64 machine where the flag changes nothing)."""
    _, env, _, _ = laptop
    from invoke import Context

    import fabfile

    monkeypatch.setattr(fabfile, "git_tag", lambda: "0123456789ab")
    for key, value in {**env, "EXTRA_CA": __file__}.items():
        monkeypatch.setenv(key, value)
    ran: list[str] = []
    monkeypatch.setattr(Context, "run", lambda self, command, **kw: ran.append(command))
    fabfile.build(Context())
    (command,) = ran
    assert "--platform linux/amd64" in command
    assert f"--secret id=ca,src={__file__}" in command and "--build-arg EXTRA_CA" not in command
    assert f"--tag {env['IMAGE']}:0123456789ab --tag {env['IMAGE']}:latest" in command
