"""The deploy docs say what the code does (#31's list of contradictions, each checked against its source)."""

from __future__ import annotations

import re

from deploy.config import SERVICE_ENV_KEYS
from tests.deploy.conftest import ROOT

DOCS = ROOT / "docs"


def test_deploy_md_names_every_setting_copied_to_the_host():
    step = (DOCS / "deploy.md").read_text().split("merge the service settings set in your shell", 1)[1][:400]
    for key in SERVICE_ENV_KEYS:
        assert f"`{key}`" in step, f"docs/deploy.md omits {key}, which fab deploy copies to the host"


def test_the_runbook_reaches_the_vm_the_way_the_firewall_allows():
    runbook = (DOCS / "runbook.md").read_text()
    assert "ssh $SSH_USER@<ip>" not in runbook  # port 22 is open to Google's IAP range only
    assert "--tunnel-through-iap" in runbook
    assert "re-run the Ansible site playbook" not in runbook  # the startup script installs the driver


def test_the_driver_is_called_a_runfile_install_not_dkms():
    # Binary mode (infra/startup.sh) runs NVIDIA's runfile; DKMS belongs to the repo mode it does not use.
    for path in (DOCS / "provisioning.md", ROOT / "infra" / "config_fleet.py"):
        assert "DKMS" not in path.read_text(), path


def test_provisioning_md_has_no_link_to_itself_and_its_anchors_exist():
    text = (DOCS / "provisioning.md").read_text()
    assert "](provisioning.md)" not in text
    slugs = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    }
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):
        assert anchor in slugs, f"#{anchor} names no heading"


def test_host_md_does_not_call_persistence_untested():
    host = (DOCS / "host.md").read_text()
    assert "starting services, the persistence daemon" not in host
    assert "test_persistenced_systemd.py" in host
