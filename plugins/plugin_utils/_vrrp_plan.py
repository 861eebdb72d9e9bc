# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""VRRP priorities, ids and peers from the egress NAT plan (pure, controller side).

Each floating IP's priorities follow the allocation: the node it is allocated to ranks first, the node it
would move to if that one failed ranks second, and so on. The allocation is computed over every gateway node
(up or not), so the priorities are stable across runs and a dead node's addresses spread over the others in
the balanced way the allocation already guarantees.
"""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils._net import InputError, family_of
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import allocation

TOP_PRIORITY = 200
PRIORITY_STEP = 10
LOWEST_RANKED_PRIORITY = 2  # 1 is a drained node's
MAX_VRID = 255


def ranked_nodes(floating_ips, gateway_hosts):
    """Floating IP -> gateway nodes in order of preference."""
    nodes = list(gateway_hosts)
    cache = {}

    def allocated(excluded):
        key = frozenset(excluded)
        if key not in cache:
            cache[key] = allocation.allocate(floating_ips, nodes, {}, sorted(excluded))
        return cache[key]

    ranking = {}
    for address in floating_ips:
        order, excluded = [], set()
        while len(order) < len(nodes):
            holder = allocated(excluded)[address]
            order.append(holder)
            excluded.add(holder)
        ranking[address] = order
    return ranking


def vrrp_instances(plan, gateway_hosts):
    """Gateway node -> [{address, vrid, priority}] for every IPv4 floating IP of the plan, in the plan's order
    of floating IPs (kube-system/default's list first)."""
    floating_ips = [address for address in plan["allocation"] if family_of(address) == "ipv4"]
    if len(floating_ips) > MAX_VRID:
        raise InputError("network_gateway_groups",
                         problem=f"{len(floating_ips)} IPv4 floating IPs, VRRP has {MAX_VRID} virtual router ids")
    instances = {node: [] for node in gateway_hosts}
    if not gateway_hosts:
        return instances
    for vrid, (address, order) in enumerate(ranked_nodes(floating_ips, gateway_hosts).items(), start=1):
        for rank, node in enumerate(order):
            priority = max(LOWEST_RANKED_PRIORITY, TOP_PRIORITY - PRIORITY_STEP * rank)
            instances[node].append({"address": address, "vrid": vrid, "priority": priority})
    return instances
