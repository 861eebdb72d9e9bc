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
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy.model import build_numbering, other_family
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import fields
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.allocation import allocate, floating_ip_order
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.availability import unavailable_gateways
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.cluster import (
    check_floating_ips, check_workloads, read_cluster_workloads, read_hosts)
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.inventory import (
    first_floating_ip_of, read_inventory)
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.overlap import shadowing
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.selection import (
    read_namespaces, selected_addresses)


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


def _allocation(floating_ips, available, unavailable, held):
    """(floating IP -> gateway node or None, floating IP -> the nodes that all hold it now).

    Only what the available nodes hold counts as held (an unavailable node releases everything). A floating
    IP that several of them hold (one came back still holding what moved away while it could not be
    reached) is held by none: every holder releases it and the one it is allocated to adds and announces it
    again, so that the neighbours learn one holder."""
    holders = {}
    for name in available:
        for address in held.get(name, []):
            holders.setdefault(address, []).append(name)
    contested = {address: nodes for address, nodes in holders.items() if len(nodes) > 1}
    current = {address: nodes[0] for address, nodes in holders.items() if len(nodes) == 1}
    if not available:
        return {address: None for address in floating_ips}, contested
    return allocate(floating_ips, available, current, list(unavailable)), contested


def check_mark_room(name, config, mark_mask):
    """A cluster node numbers each egress IP of its policies with a mark inside ``egress_nat_mark_mask``: more
    egress IPs than the mask holds would fail on that node after others changed, so it fails here."""
    field = f"{name}: egress_nat_mark_mask"
    try:
        numbering = build_numbering({} if mark_mask in (None, "") else {"mark_mask": mark_mask})
    except InputError as exc:
        raise (InputError(field, problem=exc.problem) if exc.value is None
               else InputError(field, exc.value, exc.problem)) from None
    needed = len({entry["egress_ip"] for entry in config})
    if needed > numbering.slot_count:
        raise InputError(field, problem=f"{numbering.mark_mask:#010x} numbers {numbering.slot_count} egress IPs, "
                                        f"but the policies selecting workloads of node {name} use {needed}")


def egress_nat_plan(groups, policies, namespaces, hosts, gateway_hosts, node_hosts):
    """Plan the egress NAT gateway.

    ``hosts``: host name -> ``{reachable: bool, addresses: ["addr/prefix"], workloads: [...],
    held: ["floating IP", ...], own_addresses: [...], connected: ["addr/prefix"], routers: [...],
    pod_cidrs: [...], links: [{name, up, addresses: ["addr/prefix"]}], gateway_state, interface, mark_mask}`` (what the
    hosts reported in this run, see ``cluster.read_host``). A gateway node that did not answer, is
    ``absent`` or whose uplink is down (``availability``) gets no floating IP; with none available every
    floating IP is unassigned (``None``).
    Raises ``_net.InputError`` naming the object and field on any invalid input: everything is checked
    here, before any host changes.
    """
    reachable = [name for name in list(gateway_hosts) + list(node_hosts)
                 if hosts.get(name, {}).get("reachable")]
    node_addresses = {name: list(hosts[name].get("addresses") or []) for name in reachable}
    inventory = read_inventory(groups, policies, node_addresses)
    reports = read_hosts(hosts, gateway_hosts, node_hosts)
    check_floating_ips(inventory.groups, reports)
    workloads = read_cluster_workloads(hosts, node_hosts)
    check_workloads(workloads, inventory.groups, reports)

    floating_ips = floating_ip_order(inventory.groups)
    unavailable = unavailable_gateways(reports, gateway_hosts, floating_ips)
    available = [name for name in gateway_hosts if name not in unavailable]
    held = {name: [fields.address(address, f"{name}: held[{index}]")
                   for index, address in enumerate(fields.as_list(hosts[name].get("held"), f"{name}: held"))]
            for name in gateway_hosts if name in reachable}
    allocation, contested = _allocation(floating_ips, available, unavailable, held)

    planned = []
    if inventory.policies:
        namespace_labels = read_namespaces(namespaces)
        planned = [_plan_policy(policy, inventory, namespace_labels, workloads) for policy in inventory.policies]
        # Where policies overlap, the one whose name sorts first wins on nodes and gateways alike.
        overlaps = shadowing(planned)
        for policy in planned:
            policy.update(overlaps[policy["name"]])
    source_config = {}
    for name in node_hosts:
        config = []
        for policy in planned:
            own = [w["address"] for w in policy["source_workloads"] if w["node"] == name]
            if own:
                config.append(_policy_config(policy, own))
        check_mark_room(name, config, hosts.get(name, {}).get("mark_mask"))
        source_config[name] = config
    return {
        "groups": [group.to_dict() for group in inventory.groups],
        "policies": planned,
        "allocation": allocation,
        "floating_ips_by_node": {name: [a for a, n in allocation.items() if n == name] for name in gateway_hosts},
        # Released by every node before any node adds one, so that no two nodes hold a floating IP at once.
        "releases_by_node": {name: [a for a in held.get(name, []) if allocation.get(a) != name or a in contested]
                             for name in gateway_hosts},
        "contested": contested,
        "unavailable_gateways": list(unavailable),
        "unavailable_reasons": unavailable,
        "node_addresses": node_addresses,
        "gateway_config": [_policy_config(p, p["sources"]) for p in planned if p["sources"]],
        "return_routes": _return_routes(planned, inventory.nodes),
        "source_config": source_config,
    }
