"""infra/startup.sh: lint, and real runs on a fake GPU host (fake_host.py) that start the service's container:
the image from the VM's metadata, its API key from Secret Manager (never in an argument, the output or a
file), Docker Hub's login before the pull, and a second boot that changes nothing. The host's own set-up:
test_startup_host.py; the price metric and the idle watch: test_startup_price_and_idle.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from service.settings import Settings

from .fake_host import API_KEY, TOKEN

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "startup.sh"
IMAGE = "myuser/whisper-gpu:1a2b3c4"


def test_script_parses_with_bash_n():
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_script_passes_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: run scripts/system-deps.sh test"
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_single_vm_host_is_prepared_but_runs_no_service(host):
    result = host.boot()
    assert "no docker-image attribute" in result.stdout
    assert host.calls("docker run") == []
    assert host.calls("apt-get") == []  # everything already there: nothing installed


def test_fleet_host_starts_the_image_on_port_80_with_gpus(host):
    host.set_metadata(docker_image=IMAGE, api_key_secret="whisper-dev-key")
    host.boot()
    (run,) = host.calls("docker run")
    args = run.split()
    assert args[-1] == IMAGE
    assert "--gpus all" in run
    assert args[args.index("-p") + 1] == f"80:{Settings().port}"  # the service's own default, filled in
    assert args[args.index("--restart") + 1] == "unless-stopped"
    env = (host.fake / "env-at-run").read_text().splitlines()
    stop_timeout = int(args[args.index("--stop-timeout") + 1])
    # gunicorn drains before docker kills it; the model and the rest come baked in the image
    assert env == [f"GRACEFUL_TIMEOUT={stop_timeout - 5}", f"API_KEYS={API_KEY}"]
    assert "-v" not in args and "--volume" not in args  # a mount would hide the baked model
    assert host.calls(f"docker pull -q {IMAGE}")


def test_api_key_and_token_never_appear_in_arguments_or_output_and_leave_no_file(host):
    host.set_metadata(docker_image=IMAGE, api_key_secret="whisper-dev-key")
    result = host.boot()
    calls = "\n".join(host.calls())
    assert API_KEY not in calls and API_KEY not in result.stdout + result.stderr
    assert TOKEN not in calls and TOKEN not in result.stdout + result.stderr
    assert (host.fake / "auth-header-seen").read_text().strip() == f"Authorization: Bearer {TOKEN}"
    secret_call = next(c for c in host.calls("curl") if "/secrets/" in c)
    assert "/projects/demo-project/secrets/whisper-dev-key/versions/latest:access" in secret_call
    leftovers = [p for p in (host.root / "run").iterdir()]
    assert leftovers == [], f"secret material left behind: {leftovers}"


def test_without_a_secret_the_service_runs_without_api_keys(host):
    host.set_metadata(docker_image=IMAGE)
    host.boot()
    env = (host.fake / "env-at-run").read_text()
    assert "API_KEYS" not in env
    assert env.splitlines() == ["GRACEFUL_TIMEOUT=20"]
    assert not any("/secrets/" in c for c in host.calls("curl"))


def test_second_boot_changes_nothing(host):
    host.set_metadata(docker_image=IMAGE, api_key_secret="whisper-dev-key")
    host.boot()
    before = len(host.calls())
    second = host.boot()
    new_calls = host.calls()[before:]
    assert "already runs" in second.stdout
    changes = [c for c in new_calls if not c.startswith("systemctl cat ")]  # `cat` only reads a unit
    assert not [c for c in changes if c.split()[0] in ("apt-get", "systemctl", "nvidia-ctk")]
    assert not [c for c in new_calls if c.startswith(("docker run", "docker pull", "docker rm"))]


def test_a_new_image_replaces_the_running_container(host):
    host.set_metadata(docker_image=IMAGE)
    host.boot()
    host.set_metadata(docker_image="myuser/whisper-gpu:5e6f7a8")
    host.boot()
    runs = host.calls("docker run")
    assert [r.split()[-1] for r in runs] == [IMAGE, "myuser/whisper-gpu:5e6f7a8"]
    assert host.calls("docker rm -f whisper")


DOCKERHUB_TOKEN = "dckr_pat_fake-pull-token"


def test_a_fleet_host_logs_in_to_docker_hub_before_the_pull_when_a_token_secret_is_set(host):
    # Docker Hub counts anonymous pulls per IP, and fleet VMs share Cloud NAT's addresses.
    (host.fake / "secrets").mkdir()
    (host.fake / "secrets" / "whisper-dev-dockerhub-token").write_text(DOCKERHUB_TOKEN)
    host.set_metadata(
        docker_image=IMAGE,
        api_key_secret="whisper-dev-key",
        dockerhub_username="alice",
        dockerhub_token_secret="whisper-dev-dockerhub-token",
    )
    result = host.boot()
    docker = host.calls("docker")
    login = next(i for i, c in enumerate(docker) if " login " in c)
    pull = next(i for i, c in enumerate(docker) if " pull " in c)
    assert login < pull
    assert docker[login].split()[3:] == ["login", "--username", "alice", "--password-stdin"]
    assert (host.fake / "login-stdin").read_text().strip() == DOCKERHUB_TOKEN
    (config,) = set((host.fake / "docker-configs").read_text().split())  # login and pull share one config
    assert docker[pull].split()[1:3] == ["--config", config]
    assert (host.fake / "login-config-dir").read_text().startswith("drwx------")
    assert not Path(config).exists()  # the credentials go with the pull
    everything = "\n".join(host.calls()) + result.stdout + result.stderr
    assert DOCKERHUB_TOKEN not in everything
    env = (host.fake / "env-at-run").read_text()
    assert DOCKERHUB_TOKEN not in env and env.splitlines()[-1] == f"API_KEYS={API_KEY}"
