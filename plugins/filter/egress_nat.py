# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Egress NAT filters: inventory validation, first floating IP, workload selection, allocation.

Each filter is documented in its own sidecar file next to this one (``<filter name>.yml``).
The logic lives in ``plugin_utils/_egress_nat/``; this file only reads hostvars and adapts errors.
"""

from __future__ import annotations

import functools

from ansible.errors import AnsibleFilterError

from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import allocation, inventory, plan, selection
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import status


def _filter_errors(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except InputError as exc:
            raise AnsibleFilterError(f"{function.__name__}: {exc}") from exc
    return wrapper


def _default_route_addresses(facts):
    addresses = []
    for key in ("default_ipv4", "default_ipv6"):
        route = facts.get(key) or {}
        if route.get("address") and route.get("prefix") not in (None, ""):
            addresses.append(f"{route['address']}/{route['prefix']}")
    return addresses


def _routers(facts):
    return [route["gateway"] for route in (facts.get("default_ipv4") or {}, facts.get("default_ipv6") or {})
            if route.get("gateway")]


def _links(facts):
    """Every interface but loopback with its up state (facts' ``active``) and its addresses as
    ``address/prefix`` (link and host scope left out); None when the facts list no interfaces."""
    if "interfaces" not in facts:
        return None
    links = []
    for name in facts.get("interfaces") or []:
        interface = facts.get(name) or facts.get(str(name).replace("-", "_")) or {}
        if not isinstance(interface, dict) or interface.get("type") == "loopback" or name == "lo":
            continue
        entries = [interface.get("ipv4") or {}] + list(interface.get("ipv4_secondaries") or []) + \
            list(interface.get("ipv6") or [])
        addresses = [f"{entry['address']}/{entry['prefix']}" for entry in entries
                     if isinstance(entry, dict) and entry.get("address") and entry.get("prefix") not in (None, "")
                     and entry.get("scope") not in ("link", "host")]
        links.append({"name": str(name), "up": bool(interface.get("active", True)), "addresses": addresses})
    return links


def host_report(host_vars):
    """What one host reported in this run, read from its hostvars: reachable (facts were gathered),
    its addresses in the nodes' subnet, its workloads, the floating IPs it holds now, and from facts
    every address it has, its connected networks, its interfaces (up or down, with their addresses) and its
    default gateways (routers); for a gateway node its gateway_group_state and gateway_group_interface."""
    facts = host_vars.get("ansible_facts") or {}
    held = (host_vars.get("egress_nat_held") or {}).get("addresses") or []
    links = _links(facts)
    return {
        "reachable": "interfaces" in facts,
        "addresses": list(host_vars.get("egress_nat_node_addresses") or []) or _default_route_addresses(facts),
        "workloads": list(host_vars.get("egress_workloads") or []),
        "held": [entry["address"] for entry in held],
        "own_addresses": list(facts.get("all_ipv4_addresses") or []) + list(facts.get("all_ipv6_addresses") or []),
        "connected": [address for link in links or [] for address in link["addresses"]],
        "routers": _routers(facts),
        "pod_cidrs": list(host_vars.get("egress_nat_pod_cidrs") or []),
        "links": links,
        "gateway_state": host_vars.get("gateway_group_state") or "present",
        "interface": host_vars.get("gateway_group_interface") or None,
    }


def egress_nat_plan(groups, policies, namespaces, hostvars, gateway_hosts, node_hosts):
    hosts = {name: host_report(hostvars[name]) for name in list(gateway_hosts) + list(node_hosts)
             if name in hostvars}
    return plan.egress_nat_plan(groups, policies, namespaces, hosts, gateway_hosts, node_hosts)


def egress_nat_status(plan_result, hostvars, gateway_hosts):
    held, applied = {}, {}
    for name in gateway_hosts:
        host_vars = hostvars[name] if name in hostvars else {}
        for address in host_report(host_vars)["held"]:
            held[address] = name
        for policy in (host_vars.get("egress_nat_applied") or {}).get("gathered") or []:
            applied.setdefault(policy["name"], []).append(name)
    return status.status_report(plan_result, held, applied)


class FilterModule:
    """netkit.egress egress NAT filters."""

    def filters(self):
        return {
            "egress_nat_inventory": _filter_errors(inventory.egress_nat_inventory),
            "first_floating_ip": _filter_errors(inventory.first_floating_ip),
            "select_workloads": _filter_errors(selection.select_workloads),
            "allocate_floating_ips": _filter_errors(allocation.allocate_floating_ips),
            "egress_nat_plan": _filter_errors(egress_nat_plan),
            "egress_nat_status": _filter_errors(egress_nat_status),
        }
