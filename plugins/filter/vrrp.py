# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""VRRP filters: each gateway node's keepalived instances and peers from the egress NAT plan.

Documented in the sidecar files ``vrrp_gateway_params.yml`` and ``egress_nat_status_view.yml``; the logic
lives in ``plugin_utils/_vrrp_plan.py`` and ``plugin_utils/_status_view.py``.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.netkit.egress.plugins.module_utils._net import InputError, family_of, parse_address
from ansible_collections.netkit.egress.plugins.plugin_utils import _status_view, _vrrp_plan


def _ipv4_of(cidrs):
    for cidr in cidrs or []:
        address = parse_address(cidr.split("/", 1)[0], "gateway_group_vrrp_address")
        if family_of(address) == "ipv4":
            return address
    return None


def _sync_address(host_vars):
    """The primary IPv4 address of the sync interface, from floating_ip's ``host_network`` (the planning play
    reads it into ``egress_nat_held``), else from facts."""
    interface = host_vars.get("gateway_group_sync_interface") or ""
    network = (host_vars.get("egress_nat_held") or {}).get("host_network")
    if network is not None:
        return next((entry["address"] for entry in network.get("addresses") or []
                     if entry.get("interface") == interface and ":" not in entry["address"]
                     and not entry.get("secondary")), None)
    facts = host_vars.get("ansible_facts") or {}
    entry = facts.get(interface.replace("-", "_")) or {}
    return (entry.get("ipv4") or {}).get("address")


def vrrp_gateway_params(plan, hostvars, gateway_hosts, host):
    """The vrrp_gateway parameters of ``host``: instances, unicast peers, sync peers, and whether every
    peer's address is known (a peer that is down and has no ``gateway_group_vrrp_address`` is not)."""
    try:
        instances = _vrrp_plan.vrrp_instances(plan, list(gateway_hosts))
    except InputError as exc:
        raise AnsibleFilterError(f"vrrp_gateway_params: {exc}") from exc
    peers, sync_peers, unknown = [], [], []
    for name in gateway_hosts:
        if name == host:
            continue
        host_vars = hostvars[name] if name in hostvars else {}
        address = host_vars.get("gateway_group_vrrp_address") or _ipv4_of(plan["node_addresses"].get(name)) \
            or _ipv4_of(host_vars.get("egress_nat_node_addresses"))
        if address:
            peers.append(address)
        else:
            unknown.append(name)
        sync = host_vars.get("gateway_group_sync_address") or _sync_address(host_vars)
        if sync:
            sync_peers.append(sync)
    return {"instances": instances.get(host, []), "unicast_peers": peers, "sync_peers": sync_peers,
            "unknown_peers": unknown}


def egress_nat_status_view(plan, hostvars, gateway_hosts, failover="none"):
    """Status tables and the GKE-shaped report from what the hosts reported in this run (registered
    ``egress_nat_held``, ``egress_nat_applied`` and, in VRRP mode, ``egress_nat_vrrp``)."""
    held, applied, vrrp = {}, {}, {}
    for name in gateway_hosts:
        host_vars = hostvars[name] if name in hostvars else {}
        for entry in (host_vars.get("egress_nat_held") or {}).get("addresses") or []:
            held[entry["address"]] = name
        for policy in (host_vars.get("egress_nat_applied") or {}).get("gathered") or []:
            applied.setdefault(policy["name"], []).append(name)
        vrrp[name] = (host_vars.get("egress_nat_vrrp") or {}).get("instances") or []
    return _status_view.status_view(plan, held, vrrp, applied, failover)


class FilterModule:
    """netkit.egress VRRP filters."""

    def filters(self):
        return {"vrrp_gateway_params": vrrp_gateway_params, "egress_nat_status_view": egress_nat_status_view}
