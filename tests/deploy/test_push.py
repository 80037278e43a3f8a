"""`fab build` and `fab push` with the stand-in docker: the Docker Hub token reaches `docker login` on stdin
and appears in no process's command line, no log line and no file left behind."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.config import git_tag

ROOT = Path(__file__).resolve().parents[2]
FAB = str(Path(sys.executable).with_name("fab"))
STANDIN = Path(__file__).with_name("standin_docker.py")


@pytest.fixture
def laptop(tmp_path):
    """An operator's shell: the stand-in docker first on PATH, a fresh HOME and TMPDIR."""
    bin_dir, state = tmp_path / "bin", tmp_path / "docker-state"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(
        f'#!/bin/sh\nSTANDIN_DOCKER_STATE={state} exec {sys.executable} {STANDIN} "$@"\n'
    )
    (bin_dir / "docker").chmod(0o755)
    (tmp_path / "home").mkdir()
    (tmp_path / "tmp").mkdir()
    token = "dckr_pat_" + secrets.token_hex(16)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "tmp"),
        "DOCKERHUB_USERNAME": "alice",
        "DOCKERHUB_TOKEN": token,
    }
    return tmp_path, state, env, token


def fab(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FAB, "-r", str(ROOT), *args], env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_build_then_push_keeps_the_token_out_of_argv_logs_and_disk(laptop):
    tmp_path, state, env, token = laptop
    built = fab(env, "build", "--tag", "t1", "--allow-dirty")
    assert built.returncode == 0, built.stdout + built.stderr
    local = json.loads((state / "local.json").read_text())
    assert set(local) == {"alice/whisper-gpu-service:t1", "alice/whisper-gpu-service:latest"}
    assert local["alice/whisper-gpu-service:t1"]["build_args"] == {
        "WHISPER_MODEL": "turbo",
        "WHISPER_ENGINE": "openai-whisper",
        "WHISPER_BUILD": "t1",  # /readyz reports it: the deploy checks what it is served
    }

    pushed = fab(env, "push", "--tag", "t1")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert (state / "pushed.log").read_text().split() == [
        "alice/whisper-gpu-service:t1",
        "alice/whisper-gpu-service:latest",
    ]
    # login got the token on stdin ...
    assert json.loads((state / "secret.json").read_text())["password"] == token
    # ... and no process held it in its command line while login and push ran (/proc/*/cmdline)
    assert not (state / "leaks.log").exists()
    assert token not in (state / "calls.log").read_text()
    assert token not in pushed.stdout + pushed.stderr + built.stdout + built.stderr
    # the login lived in a throwaway DOCKER_CONFIG that is gone now
    assert not (tmp_path / "home" / ".docker").exists()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_leak_detector_sees_a_token_passed_in_argv(laptop):
    """The control for the test above: a token on a command line is caught."""
    _, state, env, token = laptop
    subprocess.run(
        ["sh", "-c", f"echo {token} | docker login --username alice --password-stdin; true"],
        env=env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert token in (state / "leaks.log").read_text()


def test_push_without_credentials_says_what_to_set(laptop):
    _, state, env, _ = laptop
    del env["DOCKERHUB_TOKEN"]
    result = fab(env, "push", "--tag", "t1")
    assert result.returncode == 1
    assert "set DOCKERHUB_USERNAME and DOCKERHUB_TOKEN" in result.stderr
    assert not (state / "pushed.log").exists()


def test_push_of_a_tag_never_built_fails(laptop):
    _, state, env, token = laptop
    result = fab(env, "push", "--tag", "never-built")
    assert result.returncode != 0
    assert "An image does not exist locally with the tag" in result.stdout + result.stderr
    assert token not in result.stdout + result.stderr


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


def test_build_refuses_a_dirty_tree_unless_told(laptop, monkeypatch):
    _, state, env, _ = laptop
    import fabfile

    monkeypatch.setattr(fabfile, "git_tag", lambda: "0123456789ab-dirty")
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv("DOCKERHUB_USERNAME", "alice")
    from invoke import Context
    from invoke.exceptions import Exit

    for tag in ("", "t9"):  # an explicit tag does not hide uncommitted changes
        with pytest.raises(Exit, match="uncommitted changes"):
            fabfile.build(Context(), tag=tag)
    assert not (state / "local.json").exists()
