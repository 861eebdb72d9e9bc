"""The egress NAT gateway end to end: inventory -> playbooks/egress_nat.yml -> real packets.

Every test builds the lab cluster (see lab/cluster_lab.py) in its own namespaces and asks the external
server which source address it saw from each pod.
"""

import hashlib
import os
import re

import pytest
import yaml

import cluster_lab
from netlab import ansible_playbook, task_results

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(REPO_ROOT, "playbooks", "egress_nat.yml")
STATUS_PLAYBOOK = os.path.join(REPO_ROOT, "playbooks", "status.yml")

GUIDE_MANIFESTS_DEFAULT = cluster_lab.GUIDE_MANIFESTS
NODE_OF = {pod: spec[0] for pod, spec in cluster_lab.PODS.items()}
NODE_ADDRESS = {pod: cluster_lab.NODES[node] for pod, node in NODE_OF.items()}


@pytest.fixture
def cluster(lab):
    cluster_lab.build(lab)
    return lab


def converge(lab, tmp_path, name="inventory.yml", check=False, diff=False, **inventory_kwargs):
    inventory = cluster_lab.write_inventory(lab, str(tmp_path / name), **inventory_kwargs)
    return ansible_playbook(PLAYBOOK, inventory, check=check, diff=diff)


def snapshots(lab):
    return {host: lab.snapshot(host) for host in cluster_lab.cluster_hosts()}


def changed_hosts(output):
    return {host: counts["changed"] for host, counts in output["stats"].items() if counts["changed"]}


def failure_messages(output):
    return " ".join(result.get("msg", "") for _name, _host, result in task_results(output) if result.get("failed"))


def test_guide_manifests_select_frontends_of_alice_and_paul(cluster, tmp_path):
    before = cluster_lab.source_addresses(cluster)
    assert before == NODE_ADDRESS, "without the policy every pod leaves with its node's address"

    rc, output = converge(cluster, tmp_path)
    assert rc == 0, output

    seen = cluster_lab.source_addresses(cluster)
    # Selected (role=frontend in namespaces labelled user=alice or user=paul): the FIRST floating IP.
    assert seen["p1a"] == "192.168.1.100"
    assert seen["p2a"] == "192.168.1.100"
    # Not selected: backend pod of alice, frontend pod of bob.
    assert seen["p1b"] == cluster_lab.NODES["node1"]
    assert seen["p2b"] == cluster_lab.NODES["node2"]
    # A destination outside the policy leaves with the node address even for a selected pod.
    assert cluster.whoami("p1a", cluster_lab.OTHER_SERVER) == cluster_lab.NODES["node1"]

    # Every floating IP of the group is held by exactly one gateway node.
    holders = {}
    for gateway in cluster_lab.GATEWAYS:
        out = cluster.sh(gateway, "ip -4 -o addr show dev eth0").stdout
        for address in ("192.168.1.100", "192.168.1.101", "192.168.1.102"):
            if f" {address}/" in out:
                holders.setdefault(address, []).append(gateway)
    assert sorted(holders) == ["192.168.1.100", "192.168.1.101", "192.168.1.102"]
    assert all(len(nodes) == 1 for nodes in holders.values()), holders
    assert sorted(len([a for a, n in holders.items() if n == [g]]) for g in cluster_lab.GATEWAYS) == [1, 2]

    # Idempotence: a second run changes nothing anywhere.
    rc, output = converge(cluster, tmp_path)
    assert rc == 0
    assert changed_hosts(output) == {}

    # Status reports floating IP -> node and the policy's egress IP and selected sources.
    status_file = tmp_path / "status.yml"
    rc, status = ansible_playbook(STATUS_PLAYBOOK, str(tmp_path / "inventory.yml"),
                                  extra_vars={"egress_nat_status_file": str(status_file)})
    assert rc == 0, status
    shown = [r["msg"] for _name, _host, r in task_results(status, "Show floating IPs and policies") if "msg" in r]
    table = shown[0]
    assert table[2].split() == ["FLOATING", "IP", "HOLDER", "STATE", "SINCE", "OTHERS"]
    rows = {line.split()[0]: line.split()[1] for line in table[3:6]}
    assert rows == {a: n[0] for a, n in holders.items()}
    assert any(line.split()[:4] == ["alice-paul", "192.168.1.100", holders["192.168.1.100"][0], "Applied"]
               for line in table)
    report = yaml.safe_load(status_file.read_text())
    default_group = report["networkGatewayGroups"][0]
    assert default_group["status"]["floatingIPs"] == {a: n[0] for a, n in holders.items()}
    policy = report["egressNATPolicies"][0]
    assert policy["status"]["egressSourceIP"] == "192.168.1.100"
    assert sorted(policy["status"]["selectedSources"]) == ["10.10.1.10", "10.10.2.10"]
    assert policy["status"]["state"] == "Applied"


def test_reboot_of_every_host_boot_programs_bring_the_egress_ip_back(cluster, tmp_path):
    """A reboot without systemd of every gateway and node (processes, our nft tables, rules, routes, floating
    addresses, /run and our sysctls gone), then only what boot runs: the hosts are as the run left them."""
    rc, output = converge(cluster, tmp_path)
    assert rc == 0, failure_messages(output)
    before = snapshots(cluster)
    for host in cluster_lab.cluster_hosts():
        cluster_lab.reboot(cluster, host)
    assert cluster_lab.source_addresses(cluster) == NODE_ADDRESS
    assert cluster.sysctl_get("gw1", "net.ipv4.ip_forward") == "0"
    ran = {host: cluster_lab.boot(cluster, host) for host in cluster_lab.cluster_hosts()}
    assert ran == {host: list(cluster_lab.BOOT_PROGRAMS[:2 if host in cluster_lab.GATEWAYS else 1])
                   for host in cluster_lab.cluster_hosts()}
    seen = cluster_lab.source_addresses(cluster)
    assert seen == dict(NODE_ADDRESS, p1a="192.168.1.100", p2a="192.168.1.100")
    after = snapshots(cluster)
    for host in cluster_lab.cluster_hosts():
        for part in before[host]:
            # The node's own masquerade counted the unselected pods' connections meanwhile.
            assert cluster_lab.without_counters(after[host][part]) == cluster_lab.without_counters(
                before[host][part]), (host, part)


def test_a_gateway_node_does_not_take_back_at_boot_a_floating_ip_another_node_holds(cluster, tmp_path):
    """gw1 reboots while its floating IPs have moved (here: gw2 took 192.168.1.100, as a run without gw1 would
    have done): its boot program leaves that address alone, takes the free one, and one host answers ARP."""
    rc, output = converge(cluster, tmp_path)
    assert rc == 0, failure_messages(output)
    held_by_gw1 = holders(cluster)["gw1"]
    assert "192.168.1.100" in held_by_gw1 and len(held_by_gw1) >= 2
    cluster_lab.reboot(cluster, "gw1")
    cluster.sh("gw2", "ip addr add 192.168.1.100/24 dev eth0 noprefixroute label eth0:nk")
    assert cluster_lab.boot(cluster, "gw1") == list(cluster_lab.BOOT_PROGRAMS[:2])
    after = holders(cluster)
    assert "192.168.1.100" not in after["gw1"] and "192.168.1.100" in after["gw2"]
    assert set(after["gw1"]) == set(held_by_gw1) - {"192.168.1.100"}
    answers = cluster.sh("rt", "arping -b -c 2 -w 2 -I eth0 192.168.1.100", check=False).stdout
    assert len(set(re.findall(r"\[([0-9a-fA-F:]{17})\]", answers))) == 1, answers


def holders(lab):
    """Gateway node -> the floating addresses (label ...:nk) it has configured."""
    found = {}
    for host in cluster_lab.GATEWAYS:
        text = lab.sh(host, "ip -4 -o addr show label 'eth0:nk'").stdout
        found[host] = re.findall(r"inet (\S+)/", text)
    return found


def test_check_mode_changes_nothing_and_predicts_changes(cluster, tmp_path):
    before = snapshots(cluster)
    rc, output = converge(cluster, tmp_path, check=True, diff=True)
    assert rc == 0, output
    assert snapshots(cluster) == before
    assert set(changed_hosts(output)) == set(cluster_lab.cluster_hosts())
    assert cluster_lab.source_addresses(cluster) == NODE_ADDRESS
    # The boot files are predicted (commands, diff) and not written.
    gateway = next(result for name, _host, result in task_results(output, host="gw1")
                   if "Converge the datapath" in name)
    assert "write /etc/netkit-egress/nat_policy.start" in gateway["commands"]
    assert "/etc/netkit-egress/nat_policy.nft" in gateway["diff"]["after"]["files"]
    for host in cluster_lab.cluster_hosts():
        assert not os.path.exists(cluster_lab.private_path(cluster, host, cluster_lab.BOOT_PROGRAMS[0]))


def test_network_policy_drop_beats_the_nat_policy(cluster, tmp_path):
    rc, output = converge(cluster, tmp_path)
    assert rc == 0, output
    assert cluster.whoami("p1a", cluster_lab.SERVER) == "192.168.1.100"
    # A network policy on node1 that drops p1a's traffic to the server (a foreign filter rule).
    cluster.sh("node1", f"iptables -I FORWARD -s 10.10.1.10 -d {cluster_lab.SERVER} -j DROP")
    assert cluster.whoami("p1a", cluster_lab.SERVER, timeout=2) is None
    assert cluster.whoami("p2a", cluster_lab.SERVER) == "192.168.1.100"


TWO_GROUPS = """\
kind: NetworkGatewayGroup
apiVersion: networking.gke.io/v1
metadata: {namespace: kube-system, name: default}
spec: {floatingIPs: [192.168.1.100, 192.168.1.101]}
---
kind: NetworkGatewayGroup
apiVersion: networking.gke.io/v1
metadata: {namespace: kube-system, name: gateway2}
spec: {floatingIPs: [192.168.1.101]}
---
kind: EgressNATPolicy
apiVersion: networking.gke.io/v1
metadata: {name: alice}
spec:
  sources:
  - namespaceSelector: {matchLabels: {user: alice}}
    podSelector: {matchLabels: {role: frontend}}
  action: SNAT
  destinations: [{cidr: 203.0.113.0/24}]
  gatewayRef: {name: default, namespace: kube-system}
---
kind: EgressNATPolicy
apiVersion: networking.gke.io/v1
metadata: {name: bob}
spec:
  sources:
  - namespaceSelector: {matchExpressions: [{key: user, operator: In, values: [bob]}]}
  action: SNAT
  destinations: [{cidr: 203.0.113.0/24}]
  gatewayRef: {name: gateway2, namespace: kube-system}
"""


def test_two_groups_and_two_policies_side_by_side(cluster, tmp_path):
    rc, output = converge(cluster, tmp_path, manifests=TWO_GROUPS)
    assert rc == 0, output
    seen = cluster_lab.source_addresses(cluster)
    assert seen == {"p1a": "192.168.1.100", "p1b": "192.168.1.1", "p2a": "192.168.1.2",
                    "p2b": "192.168.1.101"}


def test_failover_moves_floating_ip_and_keeps_the_source_address(cluster, tmp_path):
    rc, output = converge(cluster, tmp_path)
    assert rc == 0, output
    holder = next(g for g in cluster_lab.GATEWAYS
                  if " 192.168.1.100/" in cluster.sh(g, "ip -4 -o addr show dev eth0").stdout)
    survivor = next(g for g in cluster_lab.GATEWAYS if g != holder)
    # The gateway node dies: its namespace (links, addresses, rules) is gone.
    cluster.sh(holder, "ip link set eth0 down")
    cluster.destroy_host(holder)
    assert cluster.whoami("p1a", cluster_lab.SERVER, timeout=2) is None

    rc, output = converge(cluster, tmp_path)
    # ansible-playbook reports the dead node as unreachable (rc 4) but converges the rest.
    assert rc in (0, 4), output
    assert output["stats"][holder]["unreachable"] == 1
    out = cluster.sh(survivor, "ip -4 -o addr show dev eth0").stdout
    for address in ("192.168.1.100", "192.168.1.101", "192.168.1.102"):
        assert f" {address}/" in out
    assert cluster.whoami("p1a", cluster_lab.SERVER) == "192.168.1.100"
    assert cluster.whoami("p2a", cluster_lab.SERVER) == "192.168.1.100"


BAD_INVENTORIES = {
    "missing gatewayRef group": (
        TWO_GROUPS.replace("name: gateway2, namespace: kube-system}\n", "name: nope, namespace: kube-system}\n"),
        "gatewayRef"),
    "duplicate gatewayRef": (TWO_GROUPS.replace("{name: gateway2, namespace: kube-system}\n",
                                                "{name: default, namespace: kube-system}\n"), "gatewayRef"),
    "floating IP outside the nodes' subnet": (
        TWO_GROUPS.replace("[192.168.1.100, 192.168.1.101]", "[192.168.1.100, 10.99.0.1]"), "10.99.0.1"),
    "floating IP equal to a node address": (
        TWO_GROUPS.replace("[192.168.1.100, 192.168.1.101]", "[192.168.1.100, 192.168.1.2]"), "192.168.1.2"),
}


@pytest.mark.parametrize("case", sorted(BAD_INVENTORIES))
def test_invalid_inventory_fails_before_any_host_changes(cluster, tmp_path, case):
    manifests, expected = BAD_INVENTORIES[case]
    before = snapshots(cluster)
    rc, output = converge(cluster, tmp_path, manifests=manifests)
    assert rc != 0
    assert expected in failure_messages(output)
    assert snapshots(cluster) == before


# ---- issue 11: overlapping policies, routers, workload addresses ---------------------------------
# Three policies select p1a (alice's frontend) for the same destinations, each with its own group. The
# name that sorts first (a-frontends) wins on node1 and on the gateways alike; b-everyone keeps every
# other pod; c-alice is left with nothing. Allocation puts 192.168.1.100 on gw1 and 192.168.1.103 on gw2:
# a node steering by one policy while a gateway translates with another would lose the replies.
OVERLAPPING = """\
kind: NetworkGatewayGroup
apiVersion: networking.gke.io/v1
metadata: {namespace: kube-system, name: default}
spec: {floatingIPs: [192.168.1.100, 192.168.1.101, 192.168.1.102]}
---
kind: NetworkGatewayGroup
apiVersion: networking.gke.io/v1
metadata: {namespace: kube-system, name: team}
spec: {floatingIPs: [192.168.1.103]}
---
kind: NetworkGatewayGroup
apiVersion: networking.gke.io/v1
metadata: {namespace: kube-system, name: alice}
spec: {floatingIPs: [192.168.1.104]}
---
kind: EgressNATPolicy
apiVersion: networking.gke.io/v1
metadata: {name: b-everyone}
spec:
  sources: [{}]
  destinations: [{cidr: 203.0.113.0/24}]
  gatewayRef: {name: default, namespace: kube-system}
---
kind: EgressNATPolicy
apiVersion: networking.gke.io/v1
metadata: {name: a-frontends}
spec:
  sources:
  - namespaceSelector: {matchLabels: {user: alice}}
    podSelector: {matchLabels: {role: frontend}}
  destinations: [{cidr: 203.0.113.0/25}, {cidr: 203.0.113.128/25}]
  gatewayRef: {name: team, namespace: kube-system}
---
kind: EgressNATPolicy
apiVersion: networking.gke.io/v1
metadata: {name: c-alice}
spec:
  sources:
  - namespaceSelector: {matchLabels: {user: alice}}
    podSelector: {matchLabels: {role: frontend}}
  destinations: [{cidr: 203.0.113.0/24}]
  gatewayRef: {name: alice, namespace: kube-system}
"""
POD_CIDRS = {"node1": ["10.10.1.0/24"], "node2": ["10.10.2.0/24"]}


def holder_of(lab, address):
    return [g for g in cluster_lab.GATEWAYS if f" {address}/" in lab.sh(g, "ip -4 -o addr show dev eth0").stdout]


def show_status(inventory, tmp_path):
    """Each policy's status as status.yml writes it (the GKE-shaped objects in egress_nat_status_file)."""
    status_file = tmp_path / "status-policies.yml"
    rc, status = ansible_playbook(STATUS_PLAYBOOK, inventory, extra_vars={"egress_nat_status_file": str(status_file)})
    assert rc == 0, status
    report = yaml.safe_load(status_file.read_text())
    return {policy["metadata"]["name"]: policy["status"] for policy in report["egressNATPolicies"]}


def test_overlapping_policies_the_name_that_sorts_first_wins_everywhere(cluster, tmp_path):
    inventory = write_cluster_inventory(cluster, tmp_path, OVERLAPPING, pod_cidrs=POD_CIDRS)
    rc, output = ansible_playbook(PLAYBOOK, inventory)
    assert rc == 0, output
    assert holder_of(cluster, "192.168.1.100") == ["gw1"] and holder_of(cluster, "192.168.1.103") == ["gw2"]

    # Real TCP: the selected pod's connection works and the server sees the winner's floating IP.
    seen = cluster_lab.source_addresses(cluster)
    assert seen == {"p1a": "192.168.1.103", "p1b": "192.168.1.100", "p2a": "192.168.1.100",
                    "p2b": "192.168.1.100"}
    for pod in ("p1a", "p2b"):
        assert [cluster.whoami(pod, cluster_lab.SERVER) for attempt in range(3)] == [seen[pod]] * 3

    status = show_status(inventory, tmp_path)
    assert status["a-frontends"]["state"] == "Applied"
    assert [c["type"] for c in status["a-frontends"]["conditions"]] == ["Overlapping", "Overlapping"]
    assert status["b-everyone"]["state"] == "PartiallyShadowed"
    shadowed = status["b-everyone"]["conditions"]
    assert [(c["type"], c["winner"]) for c in shadowed] == [("Shadowed", "a-frontends")]
    assert "10.10.1.10" in shadowed[0]["message"] and "192.168.1.103" in shadowed[0]["message"]
    assert status["c-alice"]["state"] == "Shadowed"
    assert [c["winner"] for c in status["c-alice"]["conditions"]] == ["a-frontends"]

    rc, output = ansible_playbook(PLAYBOOK, inventory)
    assert rc == 0 and changed_hosts(output) == {}


STATE_COMMANDS = ("nft list ruleset", "ip -d addr", "ip route show table all", "ip -6 route show table all",
                  "ip rule", "ip -6 rule", "iptables-save", "ip6tables-save")


def kernel_state_hashes(lab):
    """host -> sha256 of its kernel state (nft, addresses, routes and rules of all tables, iptables)."""
    hashes = {}
    for host in cluster_lab.cluster_hosts():
        text = "".join(lab.sh(host, f"{command} 2>&1", check=False).stdout for command in STATE_COMMANDS)
        # Not state: packet counters (they move with neighbour discovery), bridge port timers, the
        # timestamps in iptables-save's comments.
        text = re.sub(r"(?m)\[\d+:\d+\]|\w+_timer +[\d.]+|^#.*$", "", text)
        hashes[host] = hashlib.sha256(text.encode()).hexdigest()
    return hashes


def write_cluster_inventory(lab, tmp_path, manifests=GUIDE_MANIFESTS_DEFAULT, workloads=None, pod_cidrs=None,
                            name="inventory.yml"):
    """The lab's inventory with ``workloads`` (node -> extra or replaced workloads by name) and per-node
    ``egress_nat_pod_cidrs``."""
    inventory = cluster_lab.inventory(lab, manifests=manifests)
    nodes = inventory["all"]["children"]["egress_nat_nodes"]["hosts"]
    for node, entries in (workloads or {}).items():
        by_name = {entry["name"]: entry for entry in nodes[node]["egress_workloads"]}
        by_name.update({entry["name"]: entry for entry in entries})
        nodes[node]["egress_workloads"] = list(by_name.values())
    for node, cidrs in (pod_cidrs or {}).items():
        nodes[node]["egress_nat_pod_cidrs"] = cidrs
    path = tmp_path / name
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return str(path)


def workload(name, address, node_labels=None):
    return {"name": name, "namespace": "alice-ns", "labels": node_labels or {"role": "frontend"}, "address": address}


ROUTER = cluster_lab.GUIDE_MANIFESTS.replace("  - 192.168.1.101\n", "  - 192.168.1.254\n")
IN_USE = cluster_lab.GUIDE_MANIFESTS.replace("  - 192.168.1.101\n", "  - 192.168.1.60\n")
# case -> (manifests, workloads, pod CIDRs, a shell command that sets the lab up, words the error must contain)
PLANNING_REFUSES = {
    "floating IP is the nodes' router": (
        ROUTER, None, None, None,
        ["network_gateway_groups[0] (default): spec.floatingIPs[1]: 192.168.1.254 is the default gateway of "
         "nodes gw1, gw2, node1, node2"]),
    "floating IP is an address a node has (facts)": (
        IN_USE, None, None, ("node2", "ip addr add 192.168.1.60/24 dev eth0"),
        ["spec.floatingIPs[1]: 192.168.1.60 is node node2's own address"]),
    "workload address on two nodes": (
        GUIDE_MANIFESTS_DEFAULT, {"node2": [workload("p2a", "10.10.1.10")]}, None, None,
        ["node2: egress_workloads[0] (p2a).address: 10.10.1.10 is also the address of "
         "node1: egress_workloads[0] (p1a)"]),
    "workload address of another node's pods": (
        GUIDE_MANIFESTS_DEFAULT, {"node1": [workload("stray", "10.10.2.20")]}, None, None,
        ["node1: egress_workloads[2] (stray).address: 10.10.2.20 is not on a network of node node1",
         "it is on a network of node node2"]),
    "workload address outside the declared pod CIDRs": (
        GUIDE_MANIFESTS_DEFAULT, {"node1": [workload("late", "10.10.1.200")]}, {"node1": ["10.10.1.0/25"]}, None,
        ["node1: egress_workloads[2] (late).address: 10.10.1.200 is not in the egress_nat_pod_cidrs of node "
         "node1 (10.10.1.0/25)"]),
    "workload address is a gateway's own address": (
        GUIDE_MANIFESTS_DEFAULT, {"node1": [workload("p1a", "192.168.1.11")]}, None, None,
        ["node1: egress_workloads[0] (p1a).address: 192.168.1.11 is node gw1's own address"]),
}


@pytest.mark.parametrize("case", list(PLANNING_REFUSES))
def test_planning_refuses_before_any_host_changes(cluster, tmp_path, case):
    manifests, workloads, pod_cidrs, setup, expected = PLANNING_REFUSES[case]
    if setup:
        cluster.sh(*setup)
    inventory = write_cluster_inventory(cluster, tmp_path, manifests, workloads=workloads, pod_cidrs=pod_cidrs)
    before = kernel_state_hashes(cluster)
    rc, output = ansible_playbook(PLAYBOOK, inventory)
    assert rc != 0
    messages = failure_messages(output)
    for words in expected:
        assert words in messages, messages
    # Every host stopped in the planning play: nothing changed anywhere, no later play ran.
    assert all(output["stats"][host]["failures"] >= 1 for host in cluster_lab.cluster_hosts()), output["stats"]
    assert changed_hosts(output) == {}
    assert kernel_state_hashes(cluster) == before
    assert cluster_lab.source_addresses(cluster) == NODE_ADDRESS


# Without the planner's option checks, the roles checked these per host in the host's own play: node2's after the
# gateway nodes had changed, gw1's after their datapath had.
BAD_ROLE_OPTIONS = {
    "egress_nat_state on a cluster node": (
        "egress_nat_nodes", "node2", {"egress_nat_state": "presnt"},
        "node2: options of the role netkit.egress.egress_nat: value of egress_nat_state must be one of: present, "
        "absent, got: presnt"),
    "gateway_group_failover on a gateway node": (
        "egress_nat_gateways", "gw1", {"gateway_group_failover": "keepalived"},
        "gw1: options of the role netkit.egress.gateway_group: value of gateway_group_failover must be one of: "
        "none, vrrp, got: keepalived"),
}


@pytest.mark.parametrize("case", list(BAD_ROLE_OPTIONS))
def test_a_role_option_refused_on_one_host_stops_every_host_before_any_change(cluster, tmp_path, case):
    group, host, options, expected = BAD_ROLE_OPTIONS[case]
    inventory = cluster_lab.inventory(cluster)
    inventory["all"]["children"][group]["hosts"][host].update(options)
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    before = kernel_state_hashes(cluster)
    rc, output = ansible_playbook(PLAYBOOK, str(path))
    assert rc != 0
    assert expected in failure_messages(output)
    assert all(output["stats"][name]["failures"] >= 1 for name in cluster_lab.cluster_hosts()), output["stats"]
    assert changed_hosts(output) == {}
    assert kernel_state_hashes(cluster) == before
    assert cluster_lab.source_addresses(cluster) == NODE_ADDRESS
