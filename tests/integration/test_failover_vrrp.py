"""VRRP failover of the egress IP with real keepalived in namespaces (gateway_group_failover: vrrp).

The lab cluster (lab/cluster_lab.py) is converged once by playbooks/egress_nat.yml in VRRP mode
(advert_int 0.1 s); each test sends probes from the selected pod p1a to the external server every 10 ms,
hurts the holder of the egress IP and brings it back, while the router asks for the egress IP every 20 ms
and a capture on the nodes' segment records every ARP frame (lab/failover_lab.py).
Precise figures (>= 5 repetitions) come from bench/failover.py and are in docs/failover.md.
"""

import os

import pytest
import yaml

import cluster_lab
import failover_lab as fl
from netlab import Lab, lab_prefix

# Generous bound for a loaded CI machine; measured figures are in docs/failover.md.
GAP_BOUND = 0.5


@pytest.fixture(scope="module")
def vrrp_cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (they create network namespaces)")
    lab = Lab(lab_prefix("vr"))
    lab.destroy()
    try:
        fl.build(lab)
        inventory = str(tmp_path_factory.mktemp("vrrp") / "inventory.yml")
        rc, output = fl.converge(lab, inventory, fl.vrrp_vars())
        assert rc == 0, fl.failures(output)
        lab.inventory_path = inventory
        yield lab
    finally:
        lab.destroy()


def changed_hosts(output):
    return {host: counts["changed"] for host, counts in output["stats"].items() if counts["changed"]}


def held_by(lab):
    return {address: fl.holders(lab, address) for address in ("192.168.1.100", "192.168.1.101", "192.168.1.102")}


def settle(lab, expected_holder=None):
    """Wait until every floating IP has exactly one holder (the expected one for the egress IP)."""
    holder = fl.wait_for_holder(lab)
    for address in ("192.168.1.101", "192.168.1.102"):
        fl.wait_for_holder(lab, address)
    if expected_holder:
        holder = fl.wait_for_holder(lab, timeout=10, exclude=[g for g in cluster_lab.GATEWAYS if g != expected_holder])
        assert holder == expected_holder, held_by(lab)
    return holder


def assert_no_split_arp(figures):
    # The router asked every 20 ms: the capture saw (nearly) all of the requests and their answers.
    assert figures["arp_events"] > 40 * figures["seconds"], figures["arp_events"]
    assert figures["arp_conflicts"] == [], figures["arp_conflicts"]


def test_vrrp_holds_every_floating_ip_once_balanced_and_idempotent(vrrp_cluster):
    lab = vrrp_cluster
    settle(lab)
    held = held_by(lab)
    assert all(len(nodes) == 1 for nodes in held.values()), held
    counts = sorted(sum(1 for nodes in held.values() if nodes == [gw]) for gw in cluster_lab.GATEWAYS)
    assert counts == [1, 2]
    # The first floating IP is allocated to gw1, as without VRRP.
    assert held["192.168.1.100"] == ["gw1"]
    assert fl.vrrp_states(lab, "gw1")["nk_192_168_1_100"] == "MASTER"
    assert fl.vrrp_states(lab, "gw2")["nk_192_168_1_100"] == "BACKUP"
    seen = cluster_lab.source_addresses(lab)
    assert seen["p1a"] == seen["p2a"] == "192.168.1.100"
    assert seen["p1b"] == cluster_lab.NODES["node1"]
    # SNAT rules are on every gateway all the time, also on the one that does not hold the egress IP.
    for gateway in cluster_lab.GATEWAYS:
        assert "snat ip to 192.168.1.100" in lab.sh(gateway, "nft list table inet netkit_egress_nat").stdout

    rc, output = fl.converge(lab, lab.inventory_path, fl.vrrp_vars())
    assert rc == 0, fl.failures(output)
    assert changed_hosts(output) == {}
    keepalived_before = fl.keepalived_pids(lab, "gw1")
    rc, output = fl.ansible_playbook(fl.PLAYBOOK, lab.inventory_path, check=True, diff=True)
    assert rc == 0
    assert changed_hosts(output) == {}
    assert fl.keepalived_pids(lab, "gw1") == keepalived_before


def test_status_shows_the_vrrp_holder_and_writes_the_objects(vrrp_cluster, tmp_path):
    lab = vrrp_cluster
    settle(lab, "gw1")
    status_file = tmp_path / "status.yml"
    rc, output = fl.ansible_playbook(os.path.join(fl.REPO_ROOT, "playbooks", "status.yml"), lab.inventory_path,
                                     extra_vars={"egress_nat_status_file": str(status_file)})
    assert rc == 0, fl.failures(output)
    lines = [result["msg"] for _name, _host, result in fl.task_results(output, "Show floating IPs and policies")
             if "msg" in result][0]
    print("\n".join(lines))
    assert lines[0] == "FAILOVER: vrrp"
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("192.168.1.")}
    assert rows["192.168.1.100"][1:3] == ["gw1", "MASTER"] and rows["192.168.1.100"][4] == "gw2:BACKUP"
    assert rows["192.168.1.101"][1:3] == ["gw2", "MASTER"]
    assert any(line.split()[:4] == ["alice-paul", "192.168.1.100", "gw1", "Applied"] for line in lines)
    report = yaml.safe_load(status_file.read_text())
    assert report["failover"] == "vrrp"
    assert report["networkGatewayGroups"][0]["status"]["floatingIPs"] == {
        "192.168.1.100": "gw1", "192.168.1.101": "gw2", "192.168.1.102": "gw1"}


@pytest.mark.parametrize("fault", ["sigkill", "sigstop", "uplink-down"])
def test_failover_gap_and_no_split_arp_through_fault_and_return(vrrp_cluster, fault):
    lab = vrrp_cluster
    holder = settle(lab, "gw1")

    def reconverge():
        # The link is back but its return routes are not: the node stays in FAULT until a run restores them.
        fl.time.sleep(3)
        assert fl.holders(lab) == ["gw2"], "no route back to the workloads, no egress IP"
        assert set(fl.vrrp_states(lab, "gw1").values()) == {"FAULT"}
        rc, output = fl.converge(lab, lab.inventory_path, fl.vrrp_vars())
        assert rc == 0, fl.failures(output)

    seconds = 30.0 if fault == "uplink-down" else 5.0
    figures = fl.run_fault(lab, fault, holder, seconds=seconds, fault_after=1.0, return_after=2.5,
                           reconverge=reconverge)
    assert figures["gap"] is not None and figures["gap"] < GAP_BOUND, figures
    assert figures["sources"] == ["192.168.1.100"], "the server saw only the egress IP"
    assert_no_split_arp(figures)
    # The old holder came back (boot commands, SIGCONT, link up) and took its address back: one holder.
    assert settle(lab, "gw1") == "gw1"
    assert all(len(nodes) == 1 for nodes in held_by(lab).values()), held_by(lab)


def test_sigkill_fence_removes_the_address_at_once(vrrp_cluster):
    """keepalived leaves its addresses configured when it is killed; the fence removes them."""
    lab = vrrp_cluster
    settle(lab, "gw1")
    fl.signal_keepalived(lab, "gw1", "KILL")
    try:
        assert fl.wait_for_holder(lab, exclude=["gw1"], timeout=3) == "gw2"
        assert held_by(lab)["192.168.1.100"] == ["gw2"]
        assert "netkit_vrrp_fence" in lab.sh("gw1", "nft list tables arp").stdout
        # The dead node answers no ARP for the egress IP: only gw2's MAC does.
        out = lab.sh("rt", "arping -b -c 3 -w 2 -I eth0 192.168.1.100", check=False).stdout
        macs = {line.split("[")[1].split("]")[0].lower() for line in out.splitlines() if "reply from" in line}
        gw2_mac = lab.sh("gw2", "cat /sys/class/net/eth0/address").stdout.strip()
        assert macs == {gw2_mac}, out
    finally:
        fl.boot(lab, "gw1")
    assert settle(lab, "gw1") == "gw1"
    assert "netkit_vrrp_fence" not in lab.sh("gw1", "nft list tables arp").stdout


def test_drain_hands_over_make_before_break_with_zero_lost_probes(vrrp_cluster, tmp_path):
    lab = vrrp_cluster
    holder = settle(lab, "gw1")

    def drain_run():
        rc, output = fl.converge(lab, str(tmp_path / "drain.yml"), fl.vrrp_vars(),
                                 host_vars={"gw1": {"gateway_group_drain": True}})
        assert rc == 0, fl.failures(output)

    figures = fl.run_fault(lab, "drain", holder, seconds=30.0, fault_after=1.0, action=drain_run)
    assert figures["lost"] == 0, figures
    assert_no_split_arp(figures)
    held = held_by(lab)
    assert all(nodes == ["gw2"] for nodes in held.values()), held
    assert cluster_lab.source_addresses(lab)["p1a"] == "192.168.1.100"

    # Undrained, gw1 takes its addresses back, again without losing a probe.
    def undrain_run():
        rc, output = fl.converge(lab, lab.inventory_path, fl.vrrp_vars())
        assert rc == 0, fl.failures(output)

    figures = fl.run_fault(lab, "drain", "gw2", seconds=30.0, fault_after=1.0, action=undrain_run)
    assert figures["lost"] == 0, figures
    assert_no_split_arp(figures)
    assert settle(lab, "gw1") == "gw1"


def test_reboot_of_every_host_boot_programs_bring_datapath_and_keepalived_back(vrrp_cluster):
    """A reboot without systemd of every gateway and node: processes, our nft tables, rules, routes, addresses,
    /run and our sysctls gone; then only what boot runs (the start programs, datapath before keepalived)."""
    lab = vrrp_cluster
    settle(lab, "gw1")
    hosts = cluster_lab.cluster_hosts()
    datapath = {host: lab.snapshot(host) for host in hosts}
    for host in hosts:
        cluster_lab.reboot(lab, host)
    assert all(nodes == [] for nodes in held_by(lab).values())
    assert cluster_lab.source_addresses(lab)["p1a"] == cluster_lab.NODES["node1"], "nothing of ours is left"
    ran = {host: cluster_lab.boot(lab, host) for host in hosts}
    # The addresses stay keepalived's: floating_ip persisted none of them.
    gateway_programs = [cluster_lab.BOOT_PROGRAMS[0], fl.CONFIG_DIR + "/start"]
    assert ran == {host: gateway_programs if host in cluster_lab.GATEWAYS else gateway_programs[:1] for host in hosts}
    assert settle(lab, "gw1") == "gw1"
    assert all(len(nodes) == 1 for nodes in held_by(lab).values()), held_by(lab)
    seen = cluster_lab.source_addresses(lab)
    assert seen["p1a"] == seen["p2a"] == "192.168.1.100"
    assert seen["p1b"] == cluster_lab.NODES["node1"]
    for host in hosts:
        after = lab.snapshot(host)
        for part in ("nft", "route4", "rule4", "sysctl"):
            assert cluster_lab.without_counters(after[part]) == cluster_lab.without_counters(datapath[host][part]), \
                (host, part)


def test_namespace_deleted_fails_over_within_the_bound(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (they create network namespaces)")
    lab = Lab(lab_prefix("vd"))
    lab.destroy()
    try:
        fl.build(lab)
        rc, output = fl.converge(lab, str(tmp_path / "inventory.yml"), fl.vrrp_vars())
        assert rc == 0, fl.failures(output)
        holder = settle(lab, "gw1")
        figures = fl.run_fault(lab, "namespace-deleted", holder, seconds=3.0, fault_after=1.0)
        assert figures["gap"] < GAP_BOUND, figures
        assert figures["lost"] > 0, "the dead holder dropped the probes in flight: the gap is a real takeover"
        assert_no_split_arp(figures)
        assert fl.holders(lab) == ["gw2"]
    finally:
        lab.destroy()
