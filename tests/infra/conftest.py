"""Runs the real Pulumi program (infra/__main__.py) against Pulumi's mock engine.

The seam is Pulumi's own: `pulumi.runtime.set_mocks` replaces the engine and the GCP provider, so
every resource the program declares is recorded with its inputs, and nothing reaches Google.
Each test gets a fresh program run (runpy), as `pulumi up` would run it, for its own stack config.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import runpy
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
PROJECT = "whisper-gpu"  # Pulumi.yaml name: the namespace of project config keys
INFRA_MODULES = (
    "apis",
    "catalogue",
    "pricing",
    "config_values",
    "config_keys",
    "config_gpu",
    "config_fleet",
    "config",
    "host",
    "network",
    "identity",
    "stored_secret",
    "jobs_store",
    "gpu_vm",
    "fleet",
)
FAKE_VM_IP = "203.0.113.10"
FAKE_LB_IP = "198.51.100.20"
FAKE_DB_IP = "10.20.0.3"  # the job database's private IP, in the range reserved for private services access
FAKE_DB_PASSWORD = "GeneratedByPulumiRandom0123456789"


@dataclass(frozen=True)
class Declared:
    """One resource the program declared: its Pulumi type token, name and inputs (camelCase)."""

    type: str
    name: str
    inputs: dict[str, Any]
    id: str
    depends_on: tuple[str, ...] = ()  # the names of the resources it waits for (explicit and by input)


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every resource and answers with what GCP would compute (ids, addresses, emails)."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.declared: list[Declared] = []

        self.dependencies: dict[str, tuple[str, ...]] = {}  # name -> names, from DependencyMonitor

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        resource_id = f"{args.name}-id"
        state = {**args.inputs, **self._computed(args)}
        depends_on = self.dependencies.get(args.name, ())
        self.declared.append(Declared(args.typ, args.name, dict(args.inputs), resource_id, depends_on))
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, None]:
        raise AssertionError(f"the program should not invoke {args.token}: it runs offline-checked")

    def _computed(self, args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
        name = args.inputs.get("name") or args.name
        link = f"https://www.googleapis.com/compute/v1/projects/{self.project}/x/{name}"
        computed: dict[str, Any] = {"name": name, "selfLink": link}
        if args.typ == "gcp:compute/address:Address":
            computed["address"] = FAKE_VM_IP
        elif args.typ == "gcp:compute/globalAddress:GlobalAddress":
            computed["address"] = FAKE_LB_IP
        elif args.typ == "gcp:serviceaccount/account:Account":
            computed["email"] = f"{args.inputs['accountId']}@{self.project}.iam.gserviceaccount.com"
        elif args.typ == "gcp:compute/instance:Instance":
            computed["instanceId"] = "4242424242424242424"
        elif args.typ == "gcp:compute/instanceTemplate:InstanceTemplate":
            computed["selfLinkUnique"] = f"{link}?uniqueId=42"
        elif args.typ == "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager":
            computed["instanceGroup"] = f"{link}/instanceGroup"
        elif args.typ == "gcp:sql/databaseInstance:DatabaseInstance":
            computed["privateIpAddress"] = FAKE_DB_IP
            computed["connectionName"] = f"{self.project}:{args.inputs.get('region')}:{name}"
        elif args.typ == "random:index/randomPassword:RandomPassword":
            computed["result"] = FAKE_DB_PASSWORD
        return computed


class DependencyMonitor(pulumi.runtime.mocks.MockMonitor):
    """Pulumi's mock engine, also noting what each resource was registered to wait for (the request's
    dependency URNs, which the mocks' own arguments leave out)."""

    def RegisterResource(self, request):  # noqa: N802 (the gRPC method's name)
        names = tuple(urn.rsplit("::", 1)[-1] for urn in request.dependencies)
        self.mocks.dependencies[request.name] = names
        return super().RegisterResource(request)


@dataclass
class Deployment:
    """What one program run declared and exported."""

    resources: list[Declared]
    outputs: dict[str, Any]

    def of_type(self, short: str) -> list[Declared]:
        """Resources whose type token ends with `short`, e.g. "compute/firewall:Firewall"."""
        return [r for r in self.resources if r.type.endswith(short)]

    def one(self, short: str) -> Declared:
        found = self.of_type(short)
        assert len(found) == 1, f"expected one {short}, found {[r.name for r in found]}"
        return found[0]


def stack_config(project_keys: dict[str, str], gcp: dict[str, str] | None = None) -> dict[str, str]:
    """Config as `pulumi up` passes it: `gcp:*` and `whisper-gpu:*` keys, all values strings."""
    gcp_keys = {"project": "demo-project", **(gcp or {})}
    return {
        **{f"gcp:{k}": v for k, v in gcp_keys.items()},
        **{f"{PROJECT}:{k}": v for k, v in project_keys.items()},
    }


@contextlib.contextmanager
def infra_modules_by_bare_name() -> Iterator[None]:
    """The program imports its modules by bare name (`import config`), as Pulumi runs infra/ as a
    directory. Give each run fresh copies, and put back any unrelated module of the same name."""
    saved = {name: sys.modules.pop(name) for name in INFRA_MODULES if name in sys.modules}
    try:
        yield
    finally:
        for name in INFRA_MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def infra_module(name: str) -> Any:
    """One module of infra/ (`host`, `pricing`, ...), imported as the program imports it, fresh."""
    with infra_modules_by_bare_name():
        sys.path.insert(0, str(INFRA))
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(str(INFRA))


def run_program(config: dict[str, str], stack: str = "dev") -> Deployment:
    """One fresh `pulumi up` of infra/ under mocks; raises what the program raises.

    Pulumi keeps its settings, config and root stack in context variables: a new, empty context
    per run gives each test a clean runtime, as a new `pulumi up` process would.
    """
    return contextvars.Context().run(_run_program, config, stack)


def _run_program(config: dict[str, str], stack: str) -> Deployment:
    with infra_modules_by_bare_name():
        return _run_under_mocks(config, stack)


def _run_under_mocks(config: dict[str, str], stack: str) -> Deployment:
    mocks = RecordingMocks(config.get("gcp:project", "demo-project"))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        pulumi.runtime.set_all_config(config, [f"{PROJECT}:apiKey", f"{PROJECT}:dockerhubToken"])
        pulumi.runtime.set_mocks(
            mocks, project=PROJECT, stack=stack, preview=False, monitor=DependencyMonitor(mocks)
        )
        # set_mocks makes a root stack; the program gets its own, as under `pulumi up`.
        pulumi_settings.ROOT.set(None)
        roots: list[Any] = []

        def program() -> None:
            runpy.run_path(str(INFRA), run_name="__main__")
            roots.append(pulumi_settings.get_root_resource())  # the stack holding the exports

        loop.run_until_complete(pulumi.runtime.run_in_stack(program))
        (root,) = roots
        outputs = {
            key: loop.run_until_complete(pulumi.Output.from_input(value).future())
            for key, value in root.outputs.items()
        }
        return Deployment(list(mocks.declared), outputs)
    except Exception as failure:
        failure.declared_before_failure = list(mocks.declared)  # type: ignore[attr-defined]
        raise
    finally:
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def fake_ips() -> dict[str, str]:
    """The addresses the mocked GCP hands out: {"vm": ..., "lb": ...}."""
    return {"vm": FAKE_VM_IP, "lb": FAKE_LB_IP}


@pytest.fixture
def deploy():
    """deploy(project_keys, gcp=None, stack="dev") -> Deployment."""

    def _deploy(project_keys: dict[str, str], gcp: dict[str, str] | None = None, stack="dev"):
        return run_program(stack_config(project_keys, gcp), stack=stack)

    return _deploy


@pytest.fixture
def infra_config() -> Iterator[Any]:
    """infra/config.py as a module, for testing validation without running the program."""
    with infra_modules_by_bare_name():
        sys.path.insert(0, str(INFRA))
        try:
            yield importlib.import_module("config")
        finally:
            sys.path.remove(str(INFRA))


@pytest.fixture
def host(tmp_path: Path):
    """A fake GPU host for infra/startup.sh (tests/infra/fake_host.py): stand-in commands on PATH and a
    metadata server fed from files."""
    from .fake_host import fake_host  # it imports this module's infra_module

    return fake_host(tmp_path)
