# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole egress NAT plan from inventory: pure, deterministic, controller side.

inventory (groups, policies, namespaces, per-host facts) -> read once into typed objects and validated
(``inventory``, ``selection``) -> allocation of floating IPs -> per policy: egress IP and selected
workloads -> what each host's modules get.
"""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils import _net
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy.model import other_family
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import fields
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.allocation import allocate, floating_ip_order
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.inventory import (
    first_floating_ip_of, read_inventory)
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.selection import (
    read_namespaces, read_workloads, selected_addresses)


def split_family(egress_ip, texts):
    """(texts of the egress IP's address family, the others): nat_policy's own rule (``other_family``)."""
    other = set(other_family(egress_ip, texts))
    return ([text for index, text in enumerate(texts) if index not in other],
            [text for index, text in enumerate(texts) if index in other])


def _plan_policy(policy, inventory, namespace_labels, workloads):
    egress_ip = first_floating_ip_of(inventory.groups, policy.gateway_ref)
    selected = selected_addresses(policy, namespace_labels, workloads)
    destinations, other_destinations = split_family(egress_ip, list(policy.destinations))
    excluded, _other_excluded = split_family(egress_ip, list(policy.excluded_destinations))
    sources, other_sources = split_family(egress_ip, selected)
    wanted = set(sources)
    source_workloads = [{"name": workload.name, "namespace": workload.namespace, "node": workload.node,
                         "address": address}
                        for workload in workloads for address in workload.addresses if address in wanted]
    return {
        "name": policy.name,
        "gateway_ref": policy.gateway_ref.to_dict(),
        "egress_ip": egress_ip,
        "destinations": destinations,
        "excluded_destinations": excluded,
        "sources": sources,
        "source_workloads": source_workloads,
        # Only the egress IP's family can be translated to it; the rest is reported, not silently dropped.
        "ignored_other_family": sorted(set(other_destinations) | set(other_sources)),
    }


def _policy_config(policy, sources):
    return {"name": policy["name"], "egress_ip": policy["egress_ip"], "sources": sources,
            "destinations": policy["destinations"], "excluded_destinations": policy["excluded_destinations"]}


def _return_routes(policies, nodes):
    routes = []
    for policy in policies:
        for workload in policy["source_workloads"]:
            for via in nodes.get(workload["node"], ()):
                route = {"destination": workload["address"], "via": via}
                if _net.family_of(via) == _net.family_of(workload["address"]) and route not in routes:
                    routes.append(route)
    return routes


def egress_nat_plan(groups, policies, namespaces, hosts, gateway_hosts, node_hosts):
    """Plan the egress NAT gateway.

    ``hosts``: host name -> ``{reachable: bool, addresses: ["addr/prefix"], workloads: [...],
    held: ["floating IP", ...]}`` (what the hosts reported in this run).
    Raises ``_net.InputError`` naming the object and field on any invalid input.
    """
    reachable = [name for name in list(gateway_hosts) + list(node_hosts)
                 if hosts.get(name, {}).get("reachable")]
    node_addresses = {name: list(hosts[name].get("addresses") or []) for name in reachable}
    inventory = read_inventory(groups, policies, node_addresses)
    raw_workloads = []
    for name in node_hosts:
        for index, workload in enumerate(hosts.get(name, {}).get("workloads") or []):
            entry = fields.as_mapping(workload, f"egress_workloads[{index}] of {name}")
            raw_workloads.append(dict(entry, node=name))

    available = [name for name in gateway_hosts if name in reachable]
    unavailable = [name for name in gateway_hosts if name not in reachable]
    current_holders = {}
    for name in available:
        for address in hosts[name].get("held") or []:
            current_holders[address] = name
    allocation = allocate(floating_ip_order(inventory.groups), available, current_holders, unavailable)

    planned = []
    if inventory.policies:
        namespace_labels, workloads = read_namespaces(namespaces), read_workloads(raw_workloads)
        planned = [_plan_policy(policy, inventory, namespace_labels, workloads) for policy in inventory.policies]
    source_config = {}
    for name in node_hosts:
        config = []
        for policy in planned:
            own = [w["address"] for w in policy["source_workloads"] if w["node"] == name]
            if own:
                config.append(_policy_config(policy, own))
        source_config[name] = config
    return {
        "groups": [group.to_dict() for group in inventory.groups],
        "policies": planned,
        "allocation": allocation,
        "floating_ips_by_node": {name: [a for a, n in allocation.items() if n == name] for name in gateway_hosts},
        "unavailable_gateways": unavailable,
        "node_addresses": node_addresses,
        "gateway_config": [_policy_config(p, p["sources"]) for p in planned if p["sources"]],
        "return_routes": _return_routes(planned, inventory.nodes),
        "source_config": source_config,
    }
