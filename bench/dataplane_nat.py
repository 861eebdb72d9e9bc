# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The egress NAT datapath figure: packets from a selected pod through its node and a gateway node.

    pod 10.10.1.10 -- cbr0 [node1 192.168.1.21] -- br0 -- [gw1 192.168.1.11, floating IPs 192.168.2.1..]
                                                      \\-- rt 192.168.1.254 -- ext 203.0.113.10 (iperf3 -s)

The fleet topology of fleet_nat.py with 3 hosts (gw1, gw2, node1), converged by ``playbooks/egress_nat.yml``
as users run it. The pod is marked on node1, policy-routed to the gateway holding the floating IP (identity
SNAT on the node gets it past the node's own masquerade), SNATed there to its policy's floating IP and
forwarded to the server (the node subnet is a /16 here: each policy needs a gateway group of its own).
Configurations, each converged by the playbook and checked (the address the server sees):
  * 1 policy, selecting the pod;
  * 1,000 policies (issue 14), the pod selected by the last one (999 other workloads in the inventory, one
    per policy): 1,000 gateway groups, so 1,000 egress IPs, marks, route tables and ip rules on node1;
  * the node's own masquerade: ``egress_nat_state: absent``, the pod leaves with node1's address directly.
Each round measures the three in a rotating order; the ratios are taken pair by pair within a round.
"""

from __future__ import annotations

from common import iperf, playbook_seconds, start_iperf_server, summary, write_yaml
from fleet_nat import PLAYBOOK, build_fleet, fleet_inventory

import cluster_lab  # on the import path through common

POD = "10.10.1.10"
TARGET = 0.95  # issue 14, target 2: 1,000 policies at least 95 % of 1 policy


def floating_ip(index):
    """The floating IP of policy ``index``'s own group, in the /16 node subnet (clear of the hosts' .1.x)."""
    return f"192.168.{2 + index // 250}.{index % 250 + 1}"


def policy(index):
    return {"kind": "EgressNATPolicy", "apiVersion": "networking.gke.io/v1", "metadata": {"name": f"p{index:04d}"},
            "spec": {"sources": [{"namespaceSelector": {"matchLabels": {"user": "alice"}},
                                  "podSelector": {"matchLabels": {"app": f"w{index}"}}}],
                     "action": "SNAT", "destinations": [{"cidr": "203.0.113.0/24"}],
                     "gatewayRef": {"name": f"g{index:04d}", "namespace": "kube-system"}}}


def group(index):
    return {"kind": "NetworkGatewayGroup", "apiVersion": "networking.gke.io/v1",
            "metadata": {"namespace": "kube-system", "name": f"g{index:04d}"},
            "spec": {"floatingIPs": [floating_ip(index)]}}


def policy_inventory(lab, nodes, count, state="present"):
    """``count`` policies, each with its own gateway group (one floating IP) and selecting one workload of
    node1; the real pod is selected by the last."""
    inventory = fleet_inventory(lab, nodes)
    all_vars = inventory["all"]["vars"]
    all_vars["egress_nat_policies"] = [policy(index) for index in range(count)]
    all_vars["network_gateway_groups"] = [group(index) for index in range(count)]
    all_vars["egress_nat_state"] = state
    workloads = [{"name": "measured-pod", "namespace": "alice-ns", "labels": {"app": f"w{count - 1}"},
                  "address": POD}]
    workloads += [{"name": f"w{index}", "namespace": "alice-ns", "labels": {"app": f"w{index}"},
                   "address": f"10.10.{2 + index // 250}.{index % 250 + 1}"} for index in range(count - 1)]
    node1 = inventory["all"]["children"]["egress_nat_nodes"]["hosts"]["node1"]
    node1["egress_workloads"] = workloads
    # Only the measured pod exists (on cbr0, 10.10.1.0/24); the others are routed to the node, as with a CNI
    # that routes each pod: they must lie in the node's declared pod CIDRs.
    node1["egress_nat_pod_cidrs"] = ["10.10.0.0/16"]
    return inventory


def first_answer(lab, attempts=3):
    """The address the server sees from the pod; a connection that got no answer in time (None, on a loaded
    machine right after a 1,000-policy converge) is tried again, a wrong address is not."""
    for _attempt in range(attempts):
        seen = lab.whoami("pod", cluster_lab.SERVER)
        if seen is not None:
            return seen
    return None


def figure_dataplane_nat(bench):
    lab = bench.new_lab("e")
    nodes, node_address = build_fleet(lab, 3, node_prefix=16)
    assert list(nodes) == ["node1"]
    start_iperf_server(lab, "ext")
    # Through egress_nat.yml each policy needs a gateway group of its own: 1,000 policies are 1,000 egress IPs
    # (marks, route tables, ip rules) on node1, numbered within the role's default mark mask (0x0fff0000).
    many = 100 if bench.quick else 1000
    seconds = 1 if bench.quick else 2
    configs = [
        ("1 policy", write_yaml(bench, "nat-dp-1.yml", policy_inventory(lab, nodes, 1)), floating_ip(0)),
        (f"{many:,} policies", write_yaml(bench, f"nat-dp-{many}.yml", policy_inventory(lab, nodes, many)),
         floating_ip(many - 1)),
        ("node masquerade", write_yaml(bench, "nat-dp-absent.yml", policy_inventory(lab, nodes, 1, "absent")),
         node_address),
    ]
    results = {name: [] for name, _inventory, _seen in configs}  # per round: (Gbit/s, pps)
    for rep in range(bench.reps):
        shift = rep % len(configs)
        for name, inventory, expected in configs[shift:] + configs[:shift]:
            playbook_seconds(PLAYBOOK, inventory)
            seen = first_answer(lab)
            assert seen == expected, f"{name}: the pod left as {seen!r}, not {expected}"
            results[name].append((iperf(lab, "pod", cluster_lab.SERVER, False, seconds),
                                  iperf(lab, "pod", cluster_lab.SERVER, True, seconds)))
    kinds = (("one TCP stream", "Gbit/s"), ("UDP 64-byte payload", "pps"))
    path = "pod -> node -> gateway (SNAT to the policy's floating IP) -> server"
    for index, (kind, unit) in enumerate(kinds):
        one = [result[index] for result in results["1 policy"]]
        bench.row("dataplane", f"egress NAT path, 1 policy: {kind}", summary(one), unit,
                  note=f"{path}, converged by egress_nat.yml; the server sees {floating_ip(0)} (checked)")
    for index, (kind, unit) in enumerate(kinds):
        one = [result[index] for result in results["1 policy"]]
        values = [result[index] for result in results[f"{many:,} policies"]]
        bench.row("dataplane", f"egress NAT path, {many:,} policies, pod selected by the last: {kind}",
                  summary(values), unit, summary(one), summary([v / o for v, o in zip(values, one)]), TARGET,
                  "baseline: the same path with 1 policy, measured in the same round, pair by pair; "
                  f"{many:,} gateway groups, the server sees {floating_ip(many - 1)} (checked)")
    for index, (kind, unit) in enumerate(kinds):
        one = [result[index] for result in results["1 policy"]]
        direct = [result[index] for result in results["node masquerade"]]
        bench.row("dataplane", f"egress NAT path, 1 policy vs the node's own masquerade: {kind}", summary(one),
                  unit, summary(direct), summary([o / d for o, d in zip(one, direct)]), None,
                  f"baseline: egress_nat_state absent, the pod leaves by node1's masquerade as {node_address} "
                  "(checked), same round; the price of the extra hop, no target")
    lab.destroy()
