# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which gateway node holds which floating IP (pure): deterministic, balanced, sticky."""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import fields
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.inventory import read_groups
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.objects import DEFAULT_GROUP


def floating_ip_order(groups):
    """Every floating IP of the (typed) groups once, in order of first appearance; kube-system/default's
    list first."""
    ordered = []
    for group in sorted(groups, key=lambda group: group.key != DEFAULT_GROUP):
        ordered.extend(address for address in group.floating_ips if address not in ordered)
    return ordered


def read_floating_ips(floating_ips):
    """The filter's input: groups (either shape) or addresses."""
    entries = fields.as_list(floating_ips, "floating_ips")
    if entries and all(isinstance(entry, Mapping) for entry in entries):
        return floating_ip_order(read_groups(entries))
    ordered = []
    for index, value in enumerate(entries):
        address = fields.address(value, f"floating_ips[{index}]")
        if address not in ordered:
            ordered.append(address)
    return ordered


def read_holders(current_holders):
    """Floating IP (canonical) -> the node that holds it now (as the hosts reported)."""
    holders = {}
    for address, node in fields.as_mapping(current_holders, "current_holders").items():
        if node is not None:
            holders[fields.address(address, f"current_holders[{address}]")] = str(node)
    return holders


def available_nodes(gateway_nodes, unavailable):
    """(gateway nodes in order, each once, without the unavailable ones; the unavailable ones)."""
    down = {str(node) for node in fields.as_list(unavailable, "unavailable")}
    nodes = []
    for node in fields.as_list(gateway_nodes, "gateway_nodes"):
        if str(node) not in down and str(node) not in nodes:
            nodes.append(str(node))
    return nodes, down


def allocate(addresses, gateway_nodes, current_holders=None, unavailable=None):
    """Floating IP -> gateway node for canonical ``addresses``: balanced (counts differ by
    at most one), sticky (an IP stays with an available current holder as long as balance allows), and
    only on available nodes. Ties go to the node listed first in ``gateway_nodes``."""
    nodes, down = available_nodes(gateway_nodes, unavailable)
    if not addresses:
        return {}
    if not nodes:
        raise InputError("gateway_nodes", problem=f"no gateway node is available for the floating IPs "
                                                  f"{', '.join(addresses)} (unavailable: "
                                                  f"{', '.join(sorted(down)) or 'none'})")
    holders = read_holders(current_holders)
    base, extra = divmod(len(addresses), len(nodes))
    counts = {node: 0 for node in nodes}
    full_nodes = 0
    allocation = {}

    def has_room(node):
        return counts[node] < base or (counts[node] == base and full_nodes < extra)

    def assign(address, node):
        nonlocal full_nodes
        allocation[address] = node
        counts[node] += 1
        if counts[node] == base + 1:
            full_nodes += 1

    for address in addresses:
        holder = holders.get(address)
        if holder in counts and has_room(holder):
            assign(address, holder)
    for address in addresses:
        if address not in allocation:
            assign(address, min(nodes, key=lambda node: counts[node]))
    return {address: allocation[address] for address in addresses}


def allocate_floating_ips(floating_ips, gateway_nodes, current_holders=None, unavailable=None):
    """The filter: ``allocate`` from the raw shapes."""
    return allocate(read_floating_ips(floating_ips), gateway_nodes, current_holders, unavailable)
