"""The stack's price per hour and its opt-in idle stop, run as the real program under Pulumi's mocks.

Least privilege is asserted on what the program declares: the custom role's permission list, the one
binding (on the instance, not the project), its member (the VM's own account) and the added scope.
"""

from __future__ import annotations

import importlib
import sys

import pytest

from deploy import paths

from .conftest import INFRA, infra_module, infra_modules_by_bare_name

COMPUTE_SCOPE = "https://www.googleapis.com/auth/compute"
ACCOUNT = "serviceAccount:whisper-dev@demo-project.iam.gserviceaccount.com"


@pytest.fixture
def pricing():
    with infra_modules_by_bare_name():
        sys.path.insert(0, str(INFRA))
        try:
            yield importlib.import_module("pricing")
        finally:
            sys.path.remove(str(INFRA))


def metadata(deployment) -> dict[str, str]:
    items = deployment.one("compute/instance:Instance").inputs["metadata"]
    return dict(items)


# ---------------------------------------------------------------- price


def test_default_t4_price_is_machine_plus_gpu_plus_disk_plus_address(deploy, pricing):
    deployment = deploy({})
    expected = 0.379998 + 0.35 + 100 * 0.10 / 730 + 0.005  # n1-standard-8 + T4 + 100 GB + address
    assert deployment.outputs["pricePerHour"] == pytest.approx(expected, abs=1e-4)
    assert deployment.outputs["priceBasis"] == "list, on-demand"
    assert metadata(deployment)["whisper-price-per-hour"] == f"{round(expected, 4):g}"
    labels = metadata(deployment)["whisper-price-labels"]
    assert labels == (
        'machine_type="n1-standard-8",gpu_type="nvidia-tesla-t4",gpu_count="1",'
        'provisioning="on-demand",basis="list"'
    )


def test_spot_uses_the_spot_column_and_two_gpus_count_twice(deploy, pricing):
    on_demand = deploy({"gpuCount": "2"}).outputs["pricePerHour"]
    spot = deploy({"gpuCount": "2", "spot": "true"}).outputs["pricePerHour"]
    t4, n1 = pricing.GPUS["nvidia-tesla-t4"], pricing.MACHINES["n1-standard-8"]
    disk_and_address = 100 * 0.10 / 730 + 0.005
    assert on_demand == pytest.approx(n1.on_demand + 2 * t4.on_demand + disk_and_address, abs=1e-4)
    assert spot == pytest.approx(n1.spot + 2 * t4.spot + disk_and_address, abs=1e-4)


def test_bundled_gpu_machines_do_not_add_a_gpu_price(deploy, pricing):
    g2 = deploy({"machineType": "g2-standard-8"}).outputs["pricePerHour"]
    assert g2 == pytest.approx(
        pricing.MACHINES["g2-standard-8"].on_demand + 100 * 0.10 / 730 + 0.005, abs=1e-4
    )


def test_price_per_hour_overrides_the_table(deploy):
    deployment = deploy({"pricePerHour": "0.42", "spot": "true"})
    assert deployment.outputs["pricePerHour"] == 0.42
    assert deployment.outputs["priceBasis"] == "override, spot"
    assert 'provisioning="spot",basis="override"' in metadata(deployment)["whisper-price-labels"]


def test_a_type_missing_from_the_table_exports_no_price_and_no_metric(deploy):
    deployment = deploy({"machineType": "a2-highgpu-2g"})
    assert deployment.outputs["pricePerHour"] is None
    assert "whisper-price-per-hour" not in metadata(deployment)
    assert deploy({"machineType": "a2-highgpu-2g", "pricePerHour": "7.35"}).outputs["pricePerHour"] == 7.35


@pytest.mark.parametrize("value", ["0", "-1", "abc", "5000"])
def test_a_bad_price_is_refused(deploy, value):
    with pytest.raises(Exception, match="config pricePerHour"):
        deploy({"pricePerHour": value})


def test_cost_per_audio_hour_is_price_over_realtime_multiple(pricing):
    assert pricing.dollars_per_audio_hour(0.75, 30) == pytest.approx(0.025)
    assert pricing.dollars_per_audio_hour(0.75, 0) is None
    assert "$0.0250 per audio hour at 30.0x realtime" in pricing.cost_line(0.75, 30, "full load")


def test_every_table_entry_is_a_known_machine_and_gpu(pricing, infra_config):
    known = {*infra_config.BUNDLED_MACHINES, "n1-standard-4", "n1-standard-8", "n1-standard-16"}
    cpu_only = {m for m in pricing.MACHINES if m.split("-")[0] in infra_module("config_gpu").CPU_FAMILIES}
    assert cpu_only, "a CPU-only host (gpuType: none) needs a priced machine for make cost"
    assert set(pricing.MACHINES) <= known | cpu_only
    assert set(pricing.GPUS) <= set(infra_config.GPUS)
    for price in (*pricing.MACHINES.values(), *pricing.GPUS.values()):
        assert 0 < price.spot < price.on_demand


# ---------------------------------------------------------------- idle stop


def test_idle_stop_is_off_by_default(deploy):
    deployment = deploy({})
    assert deployment.of_type("projects/iAMCustomRole:IAMCustomRole") == []
    assert deployment.of_type("compute/instanceIAMMember:InstanceIAMMember") == []
    assert COMPUTE_SCOPE not in deployment.one("compute/instance:Instance").inputs["serviceAccount"]["scopes"]
    assert "whisper-idle-stop-minutes" not in metadata(deployment)
    assert deployment.outputs["idleStopMinutes"] == 0


def test_idle_stop_role_holds_exactly_one_permission(deploy):
    deployment = deploy({"idleStopMinutes": "45"})
    role = deployment.one("projects/iAMCustomRole:IAMCustomRole")
    assert role.inputs["permissions"] == ["compute.instances.stop"]
    assert role.inputs["roleId"] == "whisper_dev_stop_self"
    assert role.inputs["project"] == "demo-project"


def test_idle_stop_role_is_bound_on_this_instance_only_to_its_own_account(deploy):
    deployment = deploy({"idleStopMinutes": "45"})
    instance = deployment.one("compute/instance:Instance")
    binding = deployment.one("compute/instanceIAMMember:InstanceIAMMember")
    assert binding.inputs["instanceName"] == instance.name
    assert binding.inputs["zone"] == "us-central1-a"
    assert binding.inputs["role"] == "projects/demo-project/roles/whisper_dev_stop_self"
    assert binding.inputs["member"] == ACCOUNT
    # Not granted at the project level: the project's bindings stay the logs and metrics writers.
    project_roles = {m.inputs["role"] for m in deployment.of_type("projects/iAMMember:IAMMember")}
    assert project_roles == {"roles/logging.logWriter", "roles/monitoring.metricWriter"}


def test_idle_stop_adds_the_compute_scope_and_ships_the_watch(deploy):
    deployment = deploy({"idleStopMinutes": "45"})
    instance = deployment.one("compute/instance:Instance")
    assert COMPUTE_SCOPE in instance.inputs["serviceAccount"]["scopes"]
    attributes = metadata(deployment)
    assert attributes["whisper-idle-stop-minutes"] == "45"
    script = attributes["whisper-idle-stop-script"]
    raw = (INFRA / "idle_stop.py").read_text()
    filled = {"@BLUE_METRICS_PORT@": "9101", "@GREEN_METRICS_PORT@": "9102", "@RUN_DIR@": str(paths.RUN_DIR)}
    for placeholder, value in filled.items():
        raw = raw.replace(placeholder, value)
    assert script == raw
    assert deployment.outputs["idleStopMinutes"] == 45


def test_the_idle_watch_reads_the_metrics_ports_the_deploy_publishes(deploy, monkeypatch):
    """infra/host.py fills idle_stop.py's ports from the deploy's knobs, as `fab deploy` reads them."""
    monkeypatch.setenv("DEPLOY_BLUE_METRICS_PORT", "9201")
    monkeypatch.setenv("DEPLOY_GREEN_METRICS_PORT", "9202")
    script = metadata(deploy({"idleStopMinutes": "45"}))["whisper-idle-stop-script"]
    assert '"http://127.0.0.1:9201/metrics http://127.0.0.1:9202/metrics"' in script
    assert "@" not in script.split('"METRICS_URLS",', 1)[1].split(")", 1)[0]


@pytest.mark.parametrize("value", ["5", "20000", "soon"])
def test_idle_stop_minutes_out_of_range_is_refused(deploy, value):
    with pytest.raises(Exception, match="config idleStopMinutes"):
        deploy({"idleStopMinutes": value})


def test_idle_stop_is_refused_for_a_fleet(deploy):
    fleet = {"replicas": "2", "dockerImage": "myuser/whisper-gpu:1a2b3c4", "allowUnauthenticated": "true"}
    with pytest.raises(Exception, match="config idleStopMinutes: applies to the single VM only"):
        deploy({**fleet, "idleStopMinutes": "30"})


def test_min_replicas_zero_is_refused_with_the_reason(deploy):
    fleet = {"minReplicas": "0", "maxReplicas": "2", "dockerImage": "myuser/whisper-gpu:1a2b3c4"}
    with pytest.raises(Exception, match="utilisation needs a VM to measure.*idleStopMinutes"):
        deploy({**fleet, "allowUnauthenticated": "true"})


# ---------------------------------------------------------------- make bench: the price where it runs


def test_bench_finds_the_price_in_the_environment_then_in_the_vms_metadata(pricing):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Metadata(BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.headers["Metadata-Flavor"] == "Google" and self.path.endswith("/whisper-price-per-hour")
            self.send_response(200 if ok else 404)
            self.end_headers()
            self.wfile.write(b"0.7487" if ok else b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/computeMetadata/v1/instance/attributes/whisper-price-per-hour"
    try:
        assert pricing.price_here({"PRICE_PER_HOUR": "1.5", "METADATA_PRICE_URL": url}) == 1.5
        assert pricing.price_here({"METADATA_PRICE_URL": url}) == 0.7487
        assert pricing.price_here({"METADATA_PRICE_URL": url.replace("price-per-hour", "x")}) is None
    finally:
        server.shutdown()
        server.server_close()
    assert pricing.price_here({"METADATA_PRICE_URL": url}) is None  # not on a VM: no answer
