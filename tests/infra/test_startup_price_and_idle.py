"""infra/startup.sh on a single VM, run on a fake GPU host (fake_host.py): the stack's price becomes a
node_exporter metric, and the idle watch is installed as a systemd timer, or removed."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRICE_LABELS = (
    'machine_type="n1-standard-8",gpu_type="nvidia-tesla-t4",gpu_count="1",'
    'provisioning="on-demand",basis="list"'
)


def test_the_stack_price_becomes_a_metric_for_node_exporter(host):
    host.set_metadata(whisper_price_per_hour="0.7487", whisper_price_labels=PRICE_LABELS)
    host.boot()
    text = (host.root / "textfile" / "whisper_price.prom").read_text()
    assert f"vm_price_dollars_per_hour{{{PRICE_LABELS}}} 0.7487\n" in text
    assert "# TYPE vm_price_dollars_per_hour gauge" in text
    assert not (host.root / "textfile" / "whisper_price.prom.tmp").exists()


def test_a_price_removed_from_the_stack_removes_the_metric(host):
    host.set_metadata(whisper_price_per_hour="0.7487", whisper_price_labels=PRICE_LABELS)
    host.boot()
    (host.fake / "metadata" / "whisper-price-per-hour").unlink()
    host.boot()
    assert not (host.root / "textfile" / "whisper_price.prom").exists()


def test_idle_stop_minutes_installs_the_watch_as_a_timer(host):
    script = (ROOT / "infra" / "idle_stop.py").read_text()
    host.set_metadata(whisper_idle_stop_minutes="45", whisper_idle_stop_script=script)
    result = host.boot()
    assert (host.root / "idle-stop" / "idle_stop.py").read_text() == script
    service = (host.root / "systemd" / "whisper-idle-stop.service").read_text()
    assert f"ExecStart=/usr/bin/python3 {host.root}/idle-stop/idle_stop.py" in service
    timer = (host.root / "systemd" / "whisper-idle-stop.timer").read_text()
    assert "OnUnitActiveSec=1min" in timer
    assert "systemctl enable --now whisper-idle-stop.timer" in host.calls("systemctl")
    assert "stops itself after 45 minutes" in result.stdout
    # Only after the host is ready: the driver install reboots, and the watch's clock starts at each boot.
    assert host.guest_states()[-1] == "whisper/state=ready"


def test_without_idle_stop_minutes_the_watch_is_removed(host):
    host.set_metadata(whisper_idle_stop_minutes="45", whisper_idle_stop_script="print()")
    host.boot()
    (host.fake / "metadata" / "whisper-idle-stop-minutes").unlink()
    host.boot()
    assert not (host.root / "systemd" / "whisper-idle-stop.timer").exists()
    assert "systemctl disable --now whisper-idle-stop.timer" in host.calls("systemctl")


def test_no_idle_watch_without_the_setting(host):
    host.boot()
    assert not (host.root / "systemd" / "whisper-idle-stop.timer").exists()
    assert not [c for c in host.calls("systemctl") if "whisper-idle-stop" in c]
