# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the gateway and cluster nodes reported in this run, read once into ``HostReport`` objects, and the
address checks that need it (pure): a floating IP is never a node's router nor an address a host already
has; a workload address is unique in the cluster, nobody's own address or router, not a floating IP, and on
a network of the node it is listed on (its ``egress_nat_pod_cidrs``, else its connected networks)."""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils import _net
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import fields
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.objects import HostReport, Link
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.selection import read_workload

POD_CIDRS_VAR = "egress_nat_pod_cidrs"
WORKLOADS_VAR = "egress_workloads"
GATEWAY_STATE_VAR = "gateway_group_state"
GATEWAY_INTERFACE_VAR = "gateway_group_interface"
GATEWAY_STATES = ("present", "absent")


def _address_of(entry, where):
    return _net.parse_address(str(entry).strip().partition("/")[0], where)


def read_host(name, raw, gateway):
    report = fields.as_mapping(raw, f"hosts[{name}]")
    addresses = []
    for key in ("addresses", "own_addresses"):
        for index, entry in enumerate(fields.as_list(report.get(key), f"{name}: {key}")):
            address = _address_of(entry, f"{name}: {key}[{index}]")
            if address not in addresses:
                addresses.append(address)
    networks = []
    for index, entry in enumerate(fields.as_list(report.get("connected"), f"{name}: connected")):
        network = _net.parse_cidr(str(entry).strip(), f"{name}: connected[{index}]")
        if network not in networks:
            networks.append(network)
    routers = tuple(_net.unique(_net.parse_address(str(entry).strip(), f"{name}: routers[{index}]")
                                for index, entry in enumerate(fields.as_list(report.get("routers"),
                                                                             f"{name}: routers"))))
    pod_cidrs = tuple(_net.cidr_of(fields.cidr(entry, f"{name}: {POD_CIDRS_VAR}[{index}]"))
                      for index, entry in enumerate(fields.as_list(report.get("pod_cidrs"),
                                                                   f"{name}: {POD_CIDRS_VAR}")))
    gateway_state = (report.get("gateway_state") or "present") if gateway else "present"
    if gateway_state not in GATEWAY_STATES:
        raise InputError(f"{name}: {GATEWAY_STATE_VAR}", gateway_state, f"is not one of {', '.join(GATEWAY_STATES)}")
    interface = (report.get("interface") or None) if gateway else None
    if interface is not None:
        interface = _net.validate_interface(interface, f"{name}: {GATEWAY_INTERFACE_VAR}")
    return HostReport(str(name), gateway, bool(report.get("reachable")), tuple(addresses), tuple(networks),
                      routers, pod_cidrs, _read_links(name, report.get("links")), gateway_state, interface)


def _read_links(name, raw_links):
    """Link of each interface the facts list (``{name, up, addresses: ["addr/prefix"]}``); None when unknown."""
    if raw_links is None:
        return None
    links = []
    for index, raw in enumerate(fields.as_list(raw_links, f"{name}: links")):
        where = f"{name}: links[{index}]"
        entry = fields.as_mapping(raw, where)
        addresses = tuple((_address_of(text, f"{where}.addresses[{position}]"),
                           _net.parse_cidr(str(text).strip(), f"{where}.addresses[{position}]"))
                          for position, text in enumerate(fields.as_list(entry.get("addresses"),
                                                                         f"{where}.addresses")))
        links.append(Link(str(entry.get("name")), bool(entry.get("up")), addresses))
    return tuple(links)


def read_hosts(hosts, gateway_hosts, node_hosts):
    """Host name -> ``HostReport`` of every gateway and cluster node named in ``hosts``."""
    gateways = set(gateway_hosts)
    return {name: read_host(name, hosts[name], name in gateways)
            for name in _net.unique(list(gateway_hosts) + list(node_hosts)) if name in hosts}


def read_cluster_workloads(hosts, node_hosts):
    """Every cluster node's ``egress_workloads``, typed, ``node`` set, named ``node1: egress_workloads[0]``."""
    workloads = []
    for name in node_hosts:
        entries = (hosts.get(name) or {}).get("workloads")
        for index, raw in enumerate(fields.as_list(entries, f"{name}: {WORKLOADS_VAR}")):
            where = f"{name}: {WORKLOADS_VAR}[{index}]"
            workloads.append(read_workload(dict(fields.as_mapping(raw, where), node=name), where))
    return workloads


def _names(nodes):
    nodes = sorted(nodes)
    return f"node {nodes[0]}" if len(nodes) == 1 else f"nodes {', '.join(nodes)}"


def routers_of(reports):
    """Router address -> the hosts whose default gateway it is."""
    routers = {}
    for report in reports.values():
        for router in report.routers:
            routers.setdefault(router, set()).add(report.name)
    return routers


def owners_of(reports, floating_ips):
    """Address -> the first host that has it. A floating IP of the inventory on a gateway node is that node
    holding it (floating_ip or keepalived put it there), not an address of its own."""
    owners = {}
    for report in reports.values():
        for address in report.addresses:
            if report.gateway and address in floating_ips:
                continue
            owners.setdefault(address, report.name)
    return owners


def check_floating_ips(groups, reports):
    """Refuse a floating IP that is any node's default gateway or an address a host already has."""
    floating_ips = {address for group in groups for address in group.floating_ips}
    routers, owners = routers_of(reports), owners_of(reports, floating_ips)
    for group in groups:
        for address, path in zip(group.floating_ips, group.ip_paths):
            if address in routers:
                raise InputError(path, problem=f"{address} is the default gateway of {_names(routers[address])}")
            if address in owners:
                raise InputError(path, problem=f"{address} is node {owners[address]}'s own address")


def _networks_text(networks):
    return ", ".join(network.text for network in networks) or "none"


def _home_problem(address, workload, reports):
    """Why ``address`` is not on a network of the workload's node, or None when it is (or cannot be known)."""
    report = reports.get(workload.node)
    if report is None:
        return None
    host = _net.cidr_of(address)
    if report.pod_cidrs:
        networks, which = report.pod_cidrs, f"in the {POD_CIDRS_VAR} of node {report.name}"
    elif report.networks:
        networks, which = report.networks, f"on a network of node {report.name}"
    else:
        return None  # down (no facts) and nothing declared: nothing to compare with
    if any(host in network for network in networks):
        return None
    elsewhere = [other.name for other in reports.values() if other.name != report.name
                 and any(host in network for network in (other.pod_cidrs or other.networks))]
    hint = f"; it is on a network of {_names(elsewhere)}" if elsewhere else ""
    return f"{address} is not {which} ({_networks_text(networks)}){hint}"


def check_workloads(workloads, groups, reports):
    """Workload addresses: unique across the cluster, nobody's own address or router, not a floating IP, and
    on a network of their node."""
    floating_ips = {}
    for group in groups:
        for address in group.floating_ips:
            floating_ips.setdefault(address, f"{group.namespace}/{group.name}")
    routers, owners = routers_of(reports), owners_of(reports, floating_ips)
    seen = {}
    for workload in workloads:
        field = f"{workload.where}.address"
        for address in workload.addresses:
            if address in seen:
                raise InputError(field, problem=f"{address} is also the address of {seen[address]}")
            seen[address] = workload.where
            if address in owners:
                raise InputError(field, problem=f"{address} is node {owners[address]}'s own address")
            if address in routers:
                raise InputError(field, problem=f"{address} is the default gateway of {_names(routers[address])}")
            if address in floating_ips:
                raise InputError(field, problem=f"{address} is a floating IP of NetworkGatewayGroup "
                                                f"{floating_ips[address]}")
            problem = _home_problem(address, workload, reports)
            if problem:
                raise InputError(field, problem=problem)
