# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet figure of ``playbooks/egress_nat.yml``: the playbook against 10 and 50 namespace hosts.

    sw (bridge br0: the node subnet 192.168.1.0/24)
     +-- rt 192.168.1.254 / 203.0.113.1 -- ext 203.0.113.10 (whoami)      plain router: no NAT, no pod routes
     +-- gw1 192.168.1.11, gw2 192.168.1.12                               gateway nodes (egress_nat_gateways)
     +-- node1..nodeK 192.168.1.21..  each with cbr0 10.10.I.1/24 and    cluster nodes (egress_nat_nodes),
         the ordinary "-s 10.10.0.0/16 -o eth0 -j MASQUERADE" rule         K = N - 2
     nodeK's cbr0 -- pod 10.10.K.10: the one real workload (alice-ns, role=frontend: selected)

Every node carries 2-3 workloads in the inventory (alice-ns frontend: selected by the guide's policy
``alice-paul``; alice-ns backend and, on every other node, bob-ns frontend: not selected); only the last
node's selected workload exists as a namespace. After the converge the pod's connection to the whoami server
must arrive from the group's first floating IP, 192.168.1.100 (before it, from its node's address).
N + 4 namespaces per fleet.

Called by bench.py (``FIGURES``) with its ``Bench``; the helpers both need live in common.py.
"""

from __future__ import annotations

import os
import re
import statistics

from common import REPO, playbook_seconds, summary, write_yaml

import cluster_lab  # on the import path through common

PLAYBOOK = os.path.join(REPO, "playbooks", "egress_nat.yml")
FORKS = 10
ROUTER = "192.168.1.254"
NODE_BASE = 20  # node I is 192.168.1.(20 + I): clear of the gateways (.11, .12) and floating IPs (.100-.102)
EGRESS_IP = "192.168.1.100"  # the first floating IP of kube-system/default in cluster_lab.GUIDE_MANIFESTS
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def node_workloads(index):
    """The inventory workloads of node ``index``: the first is selected by the guide's policy, the others not."""
    workloads = [
        {"name": f"front-{index}", "namespace": "alice-ns", "labels": {"role": "frontend"},
         "address": f"10.10.{index}.10"},
        {"name": f"back-{index}", "namespace": "alice-ns", "labels": {"role": "backend"},
         "address": f"10.10.{index}.11"},
    ]
    if index % 2:
        workloads.append({"name": f"bob-{index}", "namespace": "bob-ns", "labels": {"role": "frontend"},
                          "address": f"10.10.{index}.12"})
    return workloads


def build_fleet(lab, count, node_prefix=24):
    """The topology above in ``lab`` for a fleet of ``count`` hosts; returns the cluster nodes' names and the
    last node's address. ``node_prefix``: the node subnet's length (a /16 holds 1,000 floating IPs)."""
    nodes = {f"node{index}": index for index in range(1, count - len(cluster_lab.GATEWAYS) + 1)}
    lab.add_host("sw")
    lab.add_host("ext")
    lab.add_host("rt", forwarding=True)
    lab.bridge("sw", "br0")
    lab.attach("sw", "br0", "rt", "eth0")
    lab.addr("rt", "eth0", f"{ROUTER}/{node_prefix}")
    lab.link("rt", "eth1", "ext", "eth0")
    lab.addr("rt", "eth1", "203.0.113.1/24")
    lab.addr("ext", "eth0", f"{cluster_lab.SERVER}/24")
    lab.route("ext", "default", via="203.0.113.1")
    addresses = dict(cluster_lab.GATEWAYS)
    addresses.update({node: f"192.168.1.{NODE_BASE + index}" for node, index in nodes.items()})
    for host, address in addresses.items():
        lab.add_host(host, forwarding=host in nodes)
        lab.attach("sw", "br0", host, "eth0")
        lab.addr(host, "eth0", f"{address}/{node_prefix}")
        lab.route(host, "default", via=ROUTER)
    for node, index in nodes.items():
        lab.bridge(node, "cbr0")
        lab.addr(node, "cbr0", f"10.10.{index}.1/24")
        # The ordinary node masquerade (a foreign rule the collection must get past, not touch).
        lab.sh(node, "iptables -t nat -A POSTROUTING -s 10.10.0.0/16 ! -d 10.10.0.0/16 -o eth0 -j MASQUERADE")
    last, index = list(nodes.items())[-1]
    lab.add_host("pod")
    lab.attach(last, "cbr0", "pod", "eth0")
    lab.addr("pod", "eth0", f"10.10.{index}.10/24")
    lab.route("pod", "default", via=f"10.10.{index}.1")
    lab.start_whoami("ext")
    return nodes, addresses[last]


def fleet_inventory(lab, nodes):
    inventory = cluster_lab.inventory(lab)
    inventory["all"]["children"]["egress_nat_nodes"] = {"hosts": {
        node: {"ansible_host": lab.ns(node), "egress_workloads": node_workloads(index)}
        for node, index in nodes.items()}}
    return inventory


def recap(output, hosts):
    """host -> (ok, changed, unreachable, failed) from the default callback's PLAY RECAP; every host present."""
    found = {match[0]: tuple(int(value) for value in match[1:]) for match in RECAP.findall(output)}
    missing = sorted(set(hosts) - set(found))
    assert not missing, f"hosts missing from the play recap: {missing}"
    troubled = {host: found[host] for host in hosts if found[host][2] or found[host][3]}
    assert not troubled, f"unreachable or failed hosts (ok, changed, unreachable, failed): {troubled}"
    return found


def figure_fleet_nat(bench):
    sizes = (10,) if bench.quick else (10, 50)
    results = {}
    for count in sizes:
        lab = bench.new_lab("n")
        nodes, last_node_address = build_fleet(lab, count)
        hosts = list(cluster_lab.GATEWAYS) + list(nodes)
        assert len(hosts) == count
        inventory = write_yaml(bench, f"fleet-nat-{count}.yml", fleet_inventory(lab, nodes))
        # Before the converge the pod leaves with its node's address (the node's own masquerade).
        seen = lab.whoami("pod", cluster_lab.SERVER)
        assert seen == last_node_address, f"before the converge the pod left as {seen!r}, not {last_node_address}"
        seconds, output = playbook_seconds(PLAYBOOK, inventory, FORKS)
        unchanged = [host for host, counts in recap(output, hosts).items() if host in hosts and not counts[1]]
        assert not unchanged, f"the converging run changed nothing on {unchanged}"
        converge = [seconds]
        noop = []
        for _rep in range(max(1, bench.reps - 1)):
            seconds, output = playbook_seconds(PLAYBOOK, inventory, FORKS)
            changed = {host: counts[1] for host, counts in recap(output, hosts).items() if host in hosts and counts[1]}
            assert not changed, f"the re-run changed hosts (host: changed tasks): {changed}"
            noop.append(seconds)
        seen = lab.whoami("pod", cluster_lab.SERVER)
        assert seen == EGRESS_IP, f"the selected pod on {list(nodes)[-1]} left as {seen!r}, not {EGRESS_IP}"
        results[count] = (converge, noop)
        per_host = statistics.median(converge) / count
        bench.row("fleet", f"egress_nat.yml, {count} hosts: converge", summary(converge), "s",
                  note=f"2 gateway nodes + {count - 2} cluster nodes, forks={FORKS}, pipelining on; "
                       f"per host {per_host:.2f} s; selected pod leaves as {EGRESS_IP} (checked)")
        bench.row("fleet", f"egress_nat.yml, {count} hosts: no-op re-run", summary(noop), "s",
                  note=f"per host {statistics.median(noop) / count:.2f} s; changed=0 on every host (checked)")
        lab.destroy()
    if len(results) == 2:
        (small, (converge_small, _noop_small)), (large, (converge_large, _noop_large)) = sorted(results.items())
        bench.row("fleet", f"egress_nat.yml: growth {small} -> {large} hosts (converge)",
                  summary([big / little for big, little in zip(converge_large, converge_small)]), "x",
                  note=f"hosts x{large // small}; linear growth would be x{large // small}")
