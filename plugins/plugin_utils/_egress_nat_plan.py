# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole egress NAT plan from inventory: pure, deterministic, controller side.

inventory (groups, policies, namespaces, per-host facts) -> validated model -> allocation of floating IPs
-> per policy: egress IP and selected workloads -> what each host's modules get.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.netkit.egress.plugins.plugin_utils import _egress_nat_inventory as inventory


def _family(address):
    return ipaddress.ip_interface(address).version


def _plan_policy(policy, groups, namespaces, workloads):
    egress_ip = inventory.first_floating_ip(groups, policy["gateway_ref"])
    family = _family(egress_ip)
    selected = inventory.select_workloads(policy, namespaces, workloads)
    destinations = [d["cidr"] for d in policy["destinations"] if _family(d["cidr"]) == family]
    excluded = [d["cidr"] for d in policy["excluded_destinations"] if _family(d["cidr"]) == family]
    sources = [address for address in selected if _family(address) == family]
    ignored = sorted({d["cidr"] for d in policy["destinations"] if _family(d["cidr"]) != family}
                     | {address for address in selected if _family(address) != family})
    source_workloads = []
    for workload in workloads:
        addresses = workload["address"] if isinstance(workload["address"], list) else [workload["address"]]
        for address in addresses:
            if str(ipaddress.ip_address(address)) in sources:
                source_workloads.append({"name": workload.get("name"), "namespace": workload.get("namespace"),
                                         "node": workload["node"], "address": str(ipaddress.ip_address(address))})
    return {
        "name": policy["name"],
        "gateway_ref": policy["gateway_ref"],
        "egress_ip": egress_ip,
        "destinations": destinations,
        "excluded_destinations": excluded,
        "sources": sources,
        "source_workloads": source_workloads,
        # Only the egress IP's family can be translated to it; the rest is reported, not silently dropped.
        "ignored_other_family": ignored,
    }


def _policy_config(policy, sources):
    return {"name": policy["name"], "egress_ip": policy["egress_ip"], "sources": sources,
            "destinations": policy["destinations"], "excluded_destinations": policy["excluded_destinations"]}


def _return_routes(policies, node_addresses):
    routes = []
    for policy in policies:
        for workload in policy["source_workloads"]:
            for node_address in node_addresses.get(workload["node"], []):
                via = str(ipaddress.ip_interface(node_address).ip)
                if _family(via) != _family(workload["address"]):
                    continue
                route = {"destination": workload["address"], "via": via}
                if route not in routes:
                    routes.append(route)
    return routes


def egress_nat_plan(groups, policies, namespaces, hosts, gateway_hosts, node_hosts):
    """Plan the egress NAT gateway.

    ``hosts``: host name -> ``{reachable: bool, addresses: ["addr/prefix"], workloads: [...],
    held: ["floating IP", ...]}`` (what the hosts reported in this run).
    Raises ``inventory.InventoryError`` naming the object and field on any invalid input.
    """
    reachable = [name for name in list(gateway_hosts) + list(node_hosts)
                 if hosts.get(name, {}).get("reachable")]
    node_addresses = {name: list(hosts[name].get("addresses") or []) for name in reachable}
    model = inventory.egress_nat_inventory(groups, policies, node_addresses)
    workloads = []
    for name in node_hosts:
        for index, workload in enumerate(hosts.get(name, {}).get("workloads") or []):
            entry = inventory._mapping(workload, f"egress_workloads[{index}] of {name}")
            workloads.append(dict(entry, node=name))

    available = [name for name in gateway_hosts if name in reachable]
    unavailable = [name for name in gateway_hosts if name not in reachable]
    current_holders = {}
    for name in available:
        for address in hosts[name].get("held") or []:
            current_holders[address] = name
    floating_ips = inventory.floating_ip_order(model["groups"])
    allocation = inventory.allocate_floating_ips(floating_ips, available, current_holders, unavailable)

    planned = [_plan_policy(policy, model["groups"], namespaces, workloads) for policy in model["policies"]]
    source_config = {}
    for name in node_hosts:
        config = []
        for policy in planned:
            own = [w["address"] for w in policy["source_workloads"] if w["node"] == name]
            if own:
                config.append(_policy_config(policy, own))
        source_config[name] = config
    return {
        "groups": model["groups"],
        "policies": planned,
        "allocation": allocation,
        "floating_ips_by_node": {name: [a for a, n in allocation.items() if n == name] for name in gateway_hosts},
        "unavailable_gateways": unavailable,
        "node_addresses": node_addresses,
        "gateway_config": [_policy_config(p, p["sources"]) for p in planned if p["sources"]],
        "return_routes": _return_routes(planned, node_addresses),
        "source_config": source_config,
    }


DEFAULT_GROUP = ("kube-system", "default")
API_VERSION = "networking.gke.io/v1"


def status_report(plan, held, applied):
    """Objects like ``kubectl get -o yaml`` prints, with a status read from the hosts.

    ``held``: floating IP -> gateway node that holds it now; ``applied``: policy name -> gateway nodes
    whose datapath has it. The status of kube-system/default lists every floating IP, as in GKE.
    """
    group_objects = []
    for group in plan["groups"]:
        if (group["namespace"], group["name"]) == DEFAULT_GROUP:
            shown = dict(sorted(held.items()))
            for address in plan["allocation"]:
                shown.setdefault(address, "unassigned")
        else:
            shown = {address: held.get(address, "unassigned") for address in group["floating_ips"]}
        group_objects.append({
            "kind": "NetworkGatewayGroup", "apiVersion": API_VERSION,
            "metadata": {"name": group["name"], "namespace": group["namespace"]},
            "spec": {"floatingIPs": group["floating_ips"]},
            "status": {"floatingIPs": shown},
        })
    policy_objects = []
    for policy in plan["policies"]:
        if not policy["sources"]:
            state = "NoSourcesSelected"
        elif policy["name"] in applied and held.get(policy["egress_ip"]):
            state = "Applied"
        else:
            state = "NotApplied"
        policy_objects.append({
            "kind": "EgressNATPolicy", "apiVersion": API_VERSION,
            "metadata": {"name": policy["name"]},
            "spec": {"gatewayRef": policy["gateway_ref"], "destinations": policy["destinations"],
                     "excludedDestinations": policy["excluded_destinations"]},
            "status": {"egressSourceIP": policy["egress_ip"],
                       "gatewayNode": held.get(policy["egress_ip"], "unassigned"),
                       "selectedSources": policy["sources"],
                       "selectedWorkloads": [w["name"] for w in policy["source_workloads"]],
                       "state": state},
        })
    return {"networkGatewayGroups": group_objects, "egressNATPolicies": policy_objects}
