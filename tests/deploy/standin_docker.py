"""A stand-in `docker` for the deploy tests: no Docker engine runs here, so this implements exactly the
subcommands fabfile.py and deploy/remote.py use, with real processes behind them.

- An app image's container is the REAL service: gunicorn -c gunicorn.conf.py 'service:create_app()' from
  the repo root (the image's WORKDIR), with the image's baked settings (the registry's `env`), the
  --env-file, and PORT / METRICS_PORT taken from the --publish host ports.
- The proxy image's container is the REAL nginx, with the --volume'd directory as its conf.d.
- build / login / push / pull move tags between a "local" image list and a "registry" (state files), so a
  push needs a build and a login (a config.json in $DOCKER_CONFIG), and a pull needs a push (or a seed).
- login reads the password from stdin, like `--password-stdin`; during login and push the stand-in scans
  every process's command line for that password and records any hit in leaks.log.

State lives in $STANDIN_DOCKER_STATE. Every call is appended to calls.log ({"time", "argv"} per line).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ["STANDIN_DOCKER_STATE"])
NGINX = "/usr/sbin/nginx"
STOP_POLL = 0.1  # seconds between checks while a container stops


# --- small state helpers
def load(name: str, default):
    path = STATE / name
    return json.loads(path.read_text()) if path.exists() else default


def save(name: str, value) -> None:
    path = STATE / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)


def fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code


def container_file(name: str) -> str:
    return f"containers/{name}.json"


def alive(pid: int | None) -> bool:
    try:
        return bool(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def scan_for_secret() -> None:
    """Record every process whose command line holds the password `login` received."""
    secret = load("secret.json", {}).get("password")
    if not secret:
        return
    hits = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if secret in cmdline:
            hits.append(f"{proc.info['pid']}: {cmdline}")
    if hits:
        with open(STATE / "leaks.log", "a") as out:
            out.write("\n".join(hits) + "\n")


# --- build, login, push, pull
def cmd_build(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="docker build")
    parser.add_argument("--build-arg", action="append", default=[])
    parser.add_argument("--tag", "-t", action="append", default=[])
    parser.add_argument("context")
    args = parser.parse_args(argv)
    local = load("local.json", {})
    build_args = dict(arg.split("=", 1) for arg in args.build_arg)
    for ref in args.tag:
        local[ref] = {"context": args.context, "build_args": build_args}
    save("local.json", local)
    print(f"Successfully tagged {' '.join(args.tag)}")
    return 0


def cmd_login(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="docker login")
    parser.add_argument("--username", "-u", required=True)
    parser.add_argument("--password-stdin", action="store_true")
    parser.add_argument("server", nargs="?", default="https://index.docker.io/v1/")
    args = parser.parse_args(argv)
    if not args.password_stdin:
        return fail("this stand-in only accepts --password-stdin")
    password = sys.stdin.read().strip()
    save("secret.json", {"password": password, "username": args.username})
    scan_for_secret()
    config_dir = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker"))
    config_dir.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{args.username}:{password}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {args.server: {"auth": auth}}}))
    print("Login Succeeded")
    return 0


def cmd_push(argv: list[str]) -> int:
    (ref,) = argv
    scan_for_secret()
    config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    if not config.exists():
        return fail("unauthorized: authentication required")
    if ref not in load("local.json", {}):
        return fail(f"An image does not exist locally with the tag: {ref}")
    registry = load("registry.json", {})
    registry[ref] = registry.get(ref, {"env": {}})
    save("registry.json", registry)
    with open(STATE / "pushed.log", "a") as out:
        out.write(ref + "\n")
    print(f"{ref}: digest: sha256:{'0' * 64} size: 1234")
    return 0


def cmd_pull(argv: list[str]) -> int:
    (ref,) = argv
    if ref not in load("registry.json", {}):
        return fail(f"Error response from daemon: manifest for {ref} not found: manifest unknown")
    print(f"Status: Downloaded newer image for {ref}")
    return 0


# --- containers
def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docker run")
    parser.add_argument("--detach", "-d", action="store_true")
    parser.add_argument("--name", required=True)
    parser.add_argument("--gpus")
    parser.add_argument("--restart")
    parser.add_argument("--env-file", action="append", default=[])
    parser.add_argument("--env", "-e", action="append", default=[])
    parser.add_argument("--publish", "-p", action="append", default=[])
    parser.add_argument("--stop-timeout", type=int)
    parser.add_argument("--label", action="append", default=[])
    parser.add_argument("--network")
    parser.add_argument("--volume", "-v", action="append", default=[])
    parser.add_argument("image")
    return parser


def read_env_file(path: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in Path(path).read_text().splitlines())
    return {k: v for k, v in (p for p in pairs if len(p) == 2) if not k.startswith("#")}


def app_command(args, image_env: dict[str, str], home: Path) -> tuple[list[str], dict[str, str]]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(home)}
    env.update(image_env)
    for path in args.env_file:
        env.update(read_env_file(path))
    env.update(dict(item.split("=", 1) for item in args.env))
    for mapping in args.publish:  # 127.0.0.1:HOST:CONTAINER
        host_port, container_port = mapping.split(":")[-2:]
        key = {"5000": "PORT", "9101": "METRICS_PORT"}[container_port]
        env[key] = host_port
    env["METRICS_HOST"] = "127.0.0.1"
    command = [str(REPO / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", "service:create_app()"]
    return command, env


def nginx_main_conf(args, home: Path) -> Path:
    (conf_dir,) = [v.split(":")[0] for v in args.volume if ":/etc/nginx/conf.d" in v]
    for sub in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    main = home / "nginx.conf"
    main.write_text(
        f"user root;\nworker_processes 2;\npid {home}/nginx.pid;\nerror_log {home}/error.log;\n"
        "events { worker_connections 512; }\n"
        f"http {{\n  client_body_temp_path {home}/client;\n  proxy_temp_path {home}/proxy;\n"
        f"  fastcgi_temp_path {home}/fastcgi;\n  uwsgi_temp_path {home}/uwsgi;\n"
        f"  scgi_temp_path {home}/scgi;\n  include {conf_dir}/*.conf;\n}}\n"
    )
    return main


def cmd_run(argv: list[str]) -> int:
    args = run_parser().parse_args(argv)
    if load(container_file(args.name), None):
        return fail(f'Conflict. The container name "/{args.name}" is already in use.', 125)
    home = STATE / "homes" / args.name
    home.mkdir(parents=True, exist_ok=True)
    if args.image.startswith("nginx:"):
        command = [NGINX, "-c", str(nginx_main_conf(args, home)), "-g", "daemon off;"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    else:
        registry = load("registry.json", {})
        if args.image not in registry:
            return fail(f"Unable to find image '{args.image}' locally", 125)
        command, env = app_command(args, registry[args.image].get("env", {}), home)
    record = {
        "name": args.name, "image": args.image, "argv": argv, "status": "created",
        "labels": dict(label.split("=", 1) for label in args.label), "home": str(home),
        "started_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "pid": None, "exit_code": 0, "command": command, "env": env,
    }  # fmt: skip
    save(container_file(args.name), record)
    supervisor = [sys.executable, __file__, "_supervise", args.name]
    subprocess.Popen(  # noqa: S603 - our own supervisor, detached like a container
        supervisor, start_new_session=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy(),
    )  # fmt: skip
    for _ in range(100):  # the supervisor records the pid within milliseconds
        if load(container_file(args.name), {}).get("pid"):
            break
        time.sleep(0.05)
    print(f"{args.name}-{os.getpid():x}")
    return 0


def cmd_supervise(name: str) -> int:
    """Run the container's process, wait for it, record its exit code (like containerd-shim)."""
    record = load(container_file(name), None)
    (STATE / "logs").mkdir(exist_ok=True)
    log = open(STATE / "logs" / f"{name}.log", "a")  # the child writes to it until it exits
    proc = subprocess.Popen(  # noqa: S603
        record["command"], cwd=REPO, env=record["env"], stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    record.update(pid=proc.pid, status="running")
    save(container_file(name), record)
    code = proc.wait()
    current = load(container_file(name), None)
    if current and current.get("pid") == proc.pid:
        current.update(status="exited", exit_code=code)
        save(container_file(name), current)
    return 0


def container_state(record: dict) -> dict:
    running = record["status"] == "running" and alive(record.get("pid"))
    return {
        "Status": "running" if running else ("exited" if record["pid"] else "created"),
        "Running": running,
        "Restarting": False,
        "ExitCode": 0 if running else record.get("exit_code", 0),
        "Pid": record["pid"] if running else 0,
        "StartedAt": record["started_at"],
    }


def cmd_inspect(argv: list[str]) -> int:
    (name,) = argv
    record = load(container_file(name), None)
    if not record:
        print("[]")
        return fail(f"Error: No such object: {name}")
    info = {
        "Name": f"/{name}",
        "State": container_state(record),
        "Config": {"Image": record["image"], "Labels": record["labels"]},
    }
    print(json.dumps([info], indent=4))
    return 0


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def stop_container(name: str, timeout: float) -> bool:
    record = load(container_file(name), None)
    if not record:
        return False
    pid = record.get("pid")
    if alive(pid):
        os.kill(pid, signal.SIGTERM)  # like docker: STOPSIGNAL to the main process only
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(STOP_POLL)
        if alive(pid):
            signal_group(pid, signal.SIGKILL)
    for _ in range(50):  # the supervisor records the exit code right after the process ends
        if load(container_file(name), {}).get("status") != "running":
            break
        time.sleep(STOP_POLL)
    return True


def cmd_stop(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="docker stop")
    parser.add_argument("--time", "-t", type=int, default=10)
    parser.add_argument("name")
    args = parser.parse_args(argv)
    if not stop_container(args.name, args.time):
        return fail(f"Error response from daemon: No such container: {args.name}")
    print(args.name)
    return 0


def cmd_rm(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="docker rm")
    parser.add_argument("--force", "-f", action="store_true")
    parser.add_argument("name")
    args = parser.parse_args(argv)
    record = load(container_file(args.name), None)
    if not record:
        return 0 if args.force else fail(f"No such container: {args.name}")
    if container_state(record)["Running"] and not args.force:
        return fail(f"You cannot remove a running container {args.name}. Stop it first.", 1)
    stop_container(args.name, timeout=0)
    (STATE / container_file(args.name)).unlink()
    print(args.name)
    return 0


def cmd_logs(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="docker logs")
    parser.add_argument("--tail", type=int, default=-1)
    parser.add_argument("--follow", "-f", action="store_true")
    parser.add_argument("name")
    args = parser.parse_args(argv)
    path = STATE / "logs" / f"{args.name}.log"
    if not path.exists():
        return fail(f"Error: No such container: {args.name}")
    lines = path.read_text(errors="replace").splitlines()
    print("\n".join(lines[-args.tail :] if args.tail >= 0 else lines))
    return 0


def cmd_exec(argv: list[str]) -> int:
    name, *command = argv
    record = load(container_file(name), None)
    if not record or not container_state(record)["Running"]:
        return fail(f"Error response from daemon: container {name} is not running")
    if command[0] != "nginx":
        return fail(f"this stand-in only execs nginx, not {command}")
    conf = str(Path(record["home"]) / "nginx.conf")
    return subprocess.run([NGINX, "-c", conf, *command[1:]], check=False).returncode  # noqa: S603


COMMANDS = {
    "build": cmd_build, "login": cmd_login, "push": cmd_push, "pull": cmd_pull, "run": cmd_run,
    "inspect": cmd_inspect, "stop": cmd_stop, "rm": cmd_rm, "logs": cmd_logs, "exec": cmd_exec,
}  # fmt: skip


def main(argv: list[str]) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "calls.log", "a") as out:
        out.write(json.dumps({"time": time.time(), "argv": argv}) + "\n")
    if argv[:1] == ["_supervise"]:
        return cmd_supervise(argv[1])
    if not argv or argv[0] not in COMMANDS:
        return fail(f"stand-in docker: unsupported command {argv[:1]}", 125)
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
