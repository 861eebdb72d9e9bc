"""Backend detection decisions and persistence files."""

import os

import pytest

from ansible_collections.netkit.egress.plugins.module_utils import _boot
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway import persist
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.backend import (
    decide, foreign_usage, needs_default_variant)
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError

EMPTY = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
DOCKER = "*filter\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT\n"
OURS = ("*filter\n:FORWARD ACCEPT [0:0]\n:NETKIT-EGRESS-FWD - [0:0]\n-A FORWARD -j NETKIT-EGRESS-FWD\n"
        "-A NETKIT-EGRESS-FWD -d 10.0.0.0/8 -i nm0 -o eth1 -j ACCEPT\nCOMMIT\n")


def test_foreign_usage_ignores_our_own_chains():
    assert foreign_usage(OURS) == [] and foreign_usage(EMPTY) == []
    assert foreign_usage(DOCKER) == ["FORWARD policy DROP", "chain DOCKER-USER", "1 rule"]


@pytest.mark.parametrize("backend, variant, nft, default, saves, expected", [
    ("auto", "auto", True, "nft", {"nft": {"ipv4": EMPTY}, "legacy": {"ipv4": ""}}, ("nftables", None)),
    ("auto", "auto", True, "nft", {"nft": {"ipv4": OURS}}, ("nftables", None)),
    ("auto", "auto", True, "nft", {"nft": {"ipv4": EMPTY}, "legacy": {"ipv4": DOCKER}}, ("iptables", "legacy")),
    ("auto", "auto", True, "legacy", {"nft": {"ipv4": DOCKER}, "legacy": {"ipv4": ""}}, ("iptables", "nft")),
    ("auto", "auto", True, "nft", {"nft": {"ipv6": DOCKER}, "legacy": {"ipv4": DOCKER}}, ("iptables", "nft")),
    ("auto", "auto", False, "legacy", {}, ("iptables", "legacy")),
    ("iptables", "auto", True, "nft", {"legacy": {"ipv4": DOCKER}}, ("iptables", "legacy")),
    ("iptables", "legacy", True, "nft", {}, ("iptables", "legacy")),
    ("nftables", "auto", True, "nft", {"nft": {"ipv4": DOCKER}}, ("nftables", None)),
])
def test_decisions(backend, variant, nft, default, saves, expected):
    decision = decide(backend, variant, nft, default, saves)
    assert (decision.backend, decision.variant) == expected
    assert decision.reason


def _decision_or_error(*args):
    try:
        return decide(*args)
    except InputError as exc:
        return str(exc)


@pytest.mark.parametrize("backend", ["auto", "nftables", "iptables"])
@pytest.mark.parametrize("variant", ["auto", "nft", "legacy"])
def test_the_iptables_binary_is_asked_only_when_its_variant_can_change_the_decision(backend, variant):
    """The run skips ``iptables --version`` where ``needs_default_variant`` says so: every decision must then
    be the same whatever that process would have answered (or the binary missing: None)."""
    cases = [(nft, saves) for nft in (True, False)
             for saves in ({}, {"nft": {"ipv4": EMPTY}}, {"nft": {"ipv4": DOCKER}}, {"legacy": {"ipv4": DOCKER}})]
    changes = any(len({repr(_decision_or_error(backend, variant, nft, default, saves))
                       for default in (None, "nft", "legacy")}) > 1 for nft, saves in cases)
    assert needs_default_variant(backend, variant) == changes


def test_reason_names_the_evidence():
    decision = decide("auto", "auto", True, "nft", {"legacy": {"ipv4": DOCKER}})
    assert "DOCKER-USER" in decision.reason and "legacy" in decision.reason


def test_no_firewall_tool_is_an_error():
    with pytest.raises(InputError, match="backend:"):
        decide("auto", "auto", False, None, {})
    with pytest.raises(InputError, match="backend: nftables"):
        decide("nftables", "auto", False, "nft", {})


def test_persist_files_nftables():
    files = persist.render_files("nftables", "table inet netkit_egress {}\n", {"net.ipv4.ip_forward": "1"},
                                 {"sysctl": "/usr/sbin/sysctl", "nft": "/usr/sbin/nft"}, "/p", "/s", "/u")
    assert files["/p/egress_gateway.nft"] == "table inet netkit_egress {}\n"
    assert "net.ipv4.ip_forward = 1\n" in files["/s/90-netkit-egress-gateway.conf"]
    unit = files["/u/netkit-egress-gateway.service"]
    assert _boot.commands(unit) == [["/usr/sbin/sysctl", "-p", "/s/90-netkit-egress-gateway.conf"],
                                    ["/usr/sbin/nft", "-f", "/p/egress_gateway.nft"]]
    assert "Type=oneshot" in unit


def test_persist_files_iptables_per_family():
    files = persist.render_files("iptables", {"ipv4": "*filter\nCOMMIT\n", "ipv6": "*nat\nCOMMIT\n"}, {},
                                 {"sysctl": "/sbin/sysctl", "ipv4": "/usr/sbin/iptables-legacy-restore",
                                  "ipv6": "/usr/sbin/ip6tables-legacy-restore"}, "/p", "/s", "/u")
    assert set(files) == {"/p/egress_gateway.rules.v4", "/p/egress_gateway.rules.v6", "/u/netkit-egress-gateway.service"}
    assert _boot.commands(files["/u/netkit-egress-gateway.service"]) == [
        ["/usr/sbin/iptables-legacy-restore", "--noflush", "/p/egress_gateway.rules.v4"],
        ["/usr/sbin/ip6tables-legacy-restore", "--noflush", "/p/egress_gateway.rules.v6"]]
    assert len(persist.all_paths("/p", "/s", "/u")) == 6


def test_persist_files_iptables_restore_the_sets_before_the_rules():
    files = persist.render_files("iptables", {"ipv4": "*filter\nCOMMIT\n", "ipset": "create netkit-egress-p0-dst4 hash:net\n"},
                                 {}, {"sysctl": "/sbin/sysctl", "ipset": "/usr/sbin/ipset",
                                      "ipv4": "/usr/sbin/iptables-nft-restore"}, "/p", "/s", "/u")
    assert files["/p/egress_gateway.ipset"] == "create netkit-egress-p0-dst4 hash:net\n"
    assert _boot.commands(files["/u/netkit-egress-gateway.service"]) == [
        ["/usr/sbin/ipset", "-exist", "-file", "/p/egress_gateway.ipset", "restore"],
        ["/usr/sbin/iptables-nft-restore", "--noflush", "/p/egress_gateway.rules.v4"]]
    assert "/p/egress_gateway.ipset" in persist.all_paths("/p", "/s", "/u")


def test_manifest_trusts_only_absolute_paths_of_our_own_file_names():
    text = persist.render_manifest(["/x/sysctl.d/90-netkit-egress-gateway.conf", "/x/egress_gateway.nft"])
    text += "/etc/passwd\nrelative/egress_gateway.nft\n/x/../etc/netkit-egress-gateway.service\n"
    assert persist.parse_manifest(text) == ["/x/egress_gateway.nft", "/x/sysctl.d/90-netkit-egress-gateway.conf"]


def test_files_persisted_under_other_directories_are_removed_when_persistence_is_turned_off(tmp_path):
    from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway import run as module

    class FileHost:
        @staticmethod
        def read_file(path):
            return open(path).read() if os.path.exists(path) else None

    persist_dir, custom = tmp_path / "persist", tmp_path / "custom"
    persist_dir.mkdir()
    custom.mkdir()
    first = {"persist_dir": str(persist_dir), "sysctl_dir": str(custom), "systemd_unit_dir": str(custom)}
    wanted = {str(persist_dir / persist.NFT_FILE): "rules", str(custom / persist.UNIT_FILE): "unit",
              str(custom / persist.SYSCTL_FILE): "sysctl"}
    writes, removals = module.persistence_changes(FileHost(), first, wanted)
    assert removals == [] and set(writes) == set(wanted) | {str(persist_dir / persist.MANIFEST_FILE)}
    for path, content in writes.items():
        with open(path, "w") as handle:
            handle.write(content)

    # persist: false, with the default (other) directories: what the first run wrote is still found.
    second = {"persist_dir": str(persist_dir), "sysctl_dir": str(tmp_path / "nowhere"),
              "systemd_unit_dir": str(tmp_path / "nowhere")}
    writes, removals = module.persistence_changes(FileHost(), second, {})
    assert writes == {}
    assert removals == sorted(set(wanted) | {str(persist_dir / persist.MANIFEST_FILE)})
