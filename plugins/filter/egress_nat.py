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
from ansible_collections.netkit.egress.plugins.plugin_utils._role_options import check_options, set_options

# Role options the planner reads and checks itself, with messages naming the element: the inventory's lists
# (the same for every host, read once from the filter's arguments) and what host_report reads of each host.
PLANNED_OPTIONS = frozenset((
    "network_gateway_groups", "egress_nat_policies", "egress_namespaces", "egress_workloads",
    "egress_nat_node_addresses", "egress_nat_pod_cidrs", "egress_nat_mark_mask", "gateway_group_state",
    "gateway_group_interface"))


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


def _links_from_host_network(network):
    """The same list as ``_links`` from floating_ip's ``host_network``: ``up`` means up with carrier."""
    links = [{"name": link["interface"], "up": bool(link.get("up")), "addresses": []}
             for link in network.get("links") or [] if not link.get("loopback")]
    by_name = {link["name"]: link for link in links}
    for entry in network.get("addresses") or []:
        if entry.get("interface") in by_name and entry.get("scope") not in ("link", "host"):
            by_name[entry["interface"]]["addresses"].append(f"{entry['address']}/{entry['prefix_length']}")
    return links


def _from_host_network(network):
    """(default route addresses, every address, routers) from floating_ip's
    ``host_network`` (state=gathered), the same values the facts of the network subset give."""
    addresses = [entry for entry in network.get("addresses") or [] if not entry.get("loopback")]
    default_addresses, routers = [], []
    for route in network.get("default_routes") or []:
        family = "inet6" if route.get("family") == "ipv6" else "inet"
        if route.get("gateway"):
            routers.append(route["gateway"])
        primary = [entry for entry in addresses if entry.get("interface") == route.get("interface")
                   and entry.get("scope") == "global" and not entry.get("secondary")
                   and (":" in entry["address"]) == (family == "inet6")]
        if primary and not any(text.startswith(primary[0]["address"] + "/") for text in default_addresses):
            default_addresses.append(f"{primary[0]['address']}/{primary[0]['prefix_length']}")
    return default_addresses, [entry["address"] for entry in addresses], list(dict.fromkeys(routers))


def host_report(host_vars):
    """What one host reported in this run, read from its hostvars: reachable, its addresses in the nodes'
    subnet, its workloads, the floating IPs it holds now, every address it has, its connected networks, its
    interfaces (up or down, with their addresses) and its default gateways (routers); for a gateway node its
    gateway_group_state and gateway_group_interface. All of it from the registered ``egress_nat_held``
    (floating_ip state=gathered, which reports ``host_network``), or from facts (network subset) where that
    is missing."""
    held_result = host_vars.get("egress_nat_held") or {}
    held = held_result.get("addresses") or []
    if "host_network" in held_result:
        reachable = True
        default_addresses, own_addresses, routers = _from_host_network(held_result["host_network"])
        links = _links_from_host_network(held_result["host_network"])
    else:
        facts = host_vars.get("ansible_facts") or {}
        reachable = "interfaces" in facts
        default_addresses, routers = _default_route_addresses(facts), _routers(facts)
        own_addresses = list(facts.get("all_ipv4_addresses") or []) + list(facts.get("all_ipv6_addresses") or [])
        links = _links(facts)
    return {
        "reachable": reachable,
        "addresses": list(host_vars.get("egress_nat_node_addresses") or []) or default_addresses,
        "workloads": list(host_vars.get("egress_workloads") or []),
        "held": [entry["address"] for entry in held],
        "own_addresses": own_addresses,
        "connected": [address for link in links or [] for address in link["addresses"]],
        "routers": routers,
        "pod_cidrs": list(host_vars.get("egress_nat_pod_cidrs") or []),
        "links": links,
        "gateway_state": host_vars.get("gateway_group_state") or "present",
        "interface": host_vars.get("gateway_group_interface") or None,
        "mark_mask": host_vars.get("egress_nat_mark_mask"),
    }


def check_read(name, host_vars):
    """A host whose read (``egress_nat_held``) failed, other than by being unreachable, is not planned as
    unavailable: it may still hold floating IPs that would then be given to a second node."""
    read = host_vars.get("egress_nat_held") or {}
    if read.get("failed") and not read.get("unreachable"):
        raise InputError(name, problem=f"reading the floating IPs it holds, its addresses and default routes "
                                       f"failed: {read.get('msg', 'no message')}")


def egress_nat_plan(groups, policies, namespaces, hostvars, gateway_hosts, node_hosts):
    names = [name for name in dict.fromkeys(list(gateway_hosts) + list(node_hosts)) if name in hostvars]
    host_vars = {name: hostvars[name] for name in names}
    for name in names:
        check_read(name, host_vars[name])
    hosts = {name: host_report(host_vars[name]) for name in names}
    result = plan.egress_nat_plan(groups, policies, namespaces, hosts, gateway_hosts, node_hosts)
    # The roles' options of every host, checked here once so that the playbook can skip the per-host checks;
    # after the planner, whose messages for the options it reads itself are the more precise.
    for name in names:
        check_options(name, "egress_nat", set_options(host_vars[name], "egress_nat", PLANNED_OPTIONS))
        if name in gateway_hosts:
            check_options(name, "gateway_group", set_options(host_vars[name], "gateway_group", PLANNED_OPTIONS))
    return result


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
