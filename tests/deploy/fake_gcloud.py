#!/usr/bin/env python3
"""A stand-in `gcloud` for the deploy tests: the subcommands the deploy path runs, answered from files in
$FAKE_GCLOUD (every call is appended to calls.log there, one JSON argv per line).

- compute os-login describe-profile --format=json    -> profile.json
- compute os-login ssh-keys add --key-file=F         -> adds F's key to profile.json, and the POSIX
                                                        account (posix-username) when the profile has none
                                                        yet: as with Google's OS Login, an account that never
                                                        added a key has no POSIX user
- compute start-iap-tunnel NAME 22 --listen-on-stdin -> relays stdin/stdout to 127.0.0.1:$FAKE_IAP_PORT,
                                                        standing in for Google's IAP TCP forwarding
- compute instances get-guest-attributes ...         -> the next line of guest-attributes (the last repeats)
                                                        (guest-attributes.error: that error, exit 1)
- compute instance-groups managed wait-until ...     -> exit status from wait-until.rc (default 0)
- auth list, services list, compute project-info describe, compute regions describe (--format=json)
                                                     -> the JSON file ANSWERS names (absent: an error)
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import sys
from pathlib import Path

STATE = Path(os.environ.get("FAKE_GCLOUD", "."))  # set for the stand-in; unused when imported


def posix_account(username: str) -> dict:
    return {"primary": True, "username": username, "uid": "1001"}


def log(argv: list[str]) -> None:
    with open(STATE / "calls.log", "a") as calls:
        calls.write(json.dumps(argv) + "\n")


def relay(port: int) -> int:
    """Copy stdin to a TCP connection and the connection to stdout until either side closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.settimeout(None)
        selector = selectors.DefaultSelector()
        selector.register(sys.stdin.buffer.raw, selectors.EVENT_READ, "in")
        selector.register(conn, selectors.EVENT_READ, "net")
        while True:
            for key, _ in selector.select(timeout=600):
                if key.data == "in":
                    data = os.read(sys.stdin.fileno(), 65536)
                    if not data:
                        return 0
                    conn.sendall(data)
                else:
                    data = conn.recv(65536)
                    if not data:
                        return 0
                    os.write(sys.stdout.fileno(), data)


# The read-only queries of deploy/cloudcheck.py: argv prefix -> the file holding the answer
ANSWERS = {
    ("auth", "list"): "accounts.json",
    ("services", "list"): "services.json",
    ("compute", "project-info", "describe"): "project-info.json",
    ("compute", "regions", "describe"): "region.json",
}


def answer(argv: list[str]) -> int | None:
    """The stored answer to a read-only query; None when argv is not one."""
    name = next((file for prefix, file in ANSWERS.items() if tuple(argv[: len(prefix)]) == prefix), None)
    if name is None:
        return None
    if not (STATE / name).exists():
        print(f"ERROR: (gcloud.{'.'.join(argv[:2])}) PERMISSION_DENIED: no {name} here", file=sys.stderr)
        return 1
    print((STATE / name).read_text())
    return 0


def guest_attribute() -> int:
    error = STATE / "guest-attributes.error"
    if error.exists():
        print(error.read_text().strip(), file=sys.stderr)
        return 1
    path = STATE / "guest-attributes"
    lines = path.read_text().splitlines() if path.exists() else []
    if not lines:
        print("ERROR: (gcloud.compute.instances.get-guest-attributes) not found", file=sys.stderr)
        return 1
    print(lines[0])
    if len(lines) > 1:
        path.write_text("\n".join(lines[1:]) + "\n")
    return 0


def main(argv: list[str]) -> int:
    log(argv)
    answered = answer(argv)
    if answered is not None:
        return answered
    if argv[:3] == ["compute", "os-login", "describe-profile"]:
        print((STATE / "profile.json").read_text())
    elif argv[:4] == ["compute", "os-login", "ssh-keys", "add"]:
        key_file = next(a.split("=", 1)[1] for a in argv if a.startswith("--key-file="))
        profile = json.loads((STATE / "profile.json").read_text())
        profile.setdefault("sshPublicKeys", {})["fingerprint"] = {"key": Path(key_file).read_text().strip()}
        username = STATE / "posix-username"  # absent: the account may not use OS Login (no role)
        if not profile.get("posixAccounts") and username.exists():
            profile["posixAccounts"] = [posix_account(username.read_text().strip())]
        (STATE / "profile.json").write_text(json.dumps(profile))
        with open(STATE / "authorized_keys", "a") as keys:  # what OS Login's sshd would now accept
            keys.write(Path(key_file).read_text())
    elif argv[:2] == ["compute", "start-iap-tunnel"]:
        return relay(int(os.environ["FAKE_IAP_PORT"]))
    elif argv[:3] == ["compute", "instances", "get-guest-attributes"]:
        return guest_attribute()
    elif argv[:4] == ["compute", "instance-groups", "managed", "wait-until"]:
        rc = STATE / "wait-until.rc"
        return int(rc.read_text()) if rc.exists() else 0
    else:
        print(f"fake gcloud: unexpected {argv}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def install(bin_dir: Path, state: Path, username: str, keys: dict | None = None) -> dict[str, str]:
    """Put this stand-in on bin_dir as `gcloud` with an OS Login profile for `username`; return the env.
    Without `keys` the profile is a first-time one: no key and no POSIX account until a key is added."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    (state / "posix-username").write_text(username)
    profile: dict = {"name": "1234567890", "sshPublicKeys": keys or {}}
    if keys:
        profile["posixAccounts"] = [posix_account(username)]
    (state / "profile.json").write_text(json.dumps(profile))
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} "$@"\n')
    gcloud.chmod(0o755)
    return {"FAKE_GCLOUD": str(state)}


def calls(state: Path) -> list[list[str]]:
    path = state / "calls.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
