# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validated model of the egress gateway (pure).

``validate(params)`` turns module parameters into an ``EgressConfig`` or raises ``_net.InputError`` naming
the field. Addresses and CIDRs are parsed by ``_net`` only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from ansible_collections.netkit.egress.plugins.module_utils._net import (
    FAMILIES, InputError, as_list, cidr_interval, cidr_list, cidr_of, family_of, normalise_cidr,
    parse_address, unique, validate_interface, validate_name)

FORWARDING_SYSCTLS = {"ipv4": "net.ipv4.ip_forward", "ipv6": "net.ipv6.conf.all.forwarding"}
NETWORK_KEYS = ("name", "cidr", "ranges", "address")


@dataclass(frozen=True)
class Network:
    name: str
    cidrs: tuple
    ranges: tuple
    # The gateway's address in this network, per family ({'ipv4': '100.64.2.1'}): the next hop of the
    # network's members (role egress_client); the gateway's own rules do not use it.
    addresses: dict = field(default_factory=dict, compare=False)

    def cidrs_of(self, family):
        return tuple(cidr for cidr in self.cidrs if family_of(cidr) == family)


@dataclass(frozen=True)
class EgressConfig:
    ranges: tuple  # normalised, deduplicated, includes every network's ranges
    nat: bool = True
    network_interface: str | None = None
    interface: str | None = None
    networks: tuple = ()
    reverse_nat: bool = False
    forward_accept: bool = True
    excluded_ranges: tuple = ()  # normalised; cut out of every range (top level and networks')
    top_level_ranges: tuple = field(default=(), compare=False)  # normalised, only the ``ranges`` parameter's

    def field_of(self, cidr):
        """The field that named ``cidr`` first, for errors."""
        return self._range_fields.get(cidr, "ranges")

    @functools.cached_property
    def _range_fields(self):
        # Built on the first error (or the controller's first question), not in every run of 10,000 ranges.
        range_fields = {}
        for index, cidr in enumerate(self.top_level_ranges):
            range_fields.setdefault(cidr, f"ranges[{index}]")
        for network_index, network in enumerate(self.networks):
            for index, cidr in enumerate(network.ranges):
                range_fields.setdefault(cidr, f"networks[{network_index}].ranges[{index}]")
        return range_fields


def _validate_network(entry, index):
    where = f"networks[{index}]"
    if not isinstance(entry, dict):
        raise InputError(where, problem=f"must be a dict with name, cidr and ranges, got {entry!r}")
    unknown = sorted(set(entry) - set(NETWORK_KEYS))
    if unknown:
        raise InputError(where, problem=f"unknown key(s) {', '.join(unknown)} (expected name, cidr, ranges, address)")
    name = validate_name(entry.get("name"), f"{where}.name")
    raw_cidr = entry.get("cidr")
    if isinstance(raw_cidr, str):
        cidrs = (normalise_cidr(raw_cidr, f"{where}.cidr"),)
    else:
        cidrs = cidr_list(raw_cidr, f"{where}.cidr")
    if not cidrs:
        raise InputError(f"{where}.cidr", problem="at least one CIDR is required")
    ranges = cidr_list(entry.get("ranges"), f"{where}.ranges")
    cidr_families = {family_of(cidr) for cidr in cidrs}
    for range_index, cidr in enumerate(ranges):
        if family_of(cidr) not in cidr_families:
            raise InputError(f"{where}.ranges[{range_index}]",
                             problem=f"{cidr} is {family_of(cidr)} but network {name} has no {family_of(cidr)} cidr")
    return Network(name=name, cidrs=cidrs, ranges=ranges, addresses=_network_addresses(entry, where, cidrs))


def _network_addresses(entry, where, cidrs):
    """{family: address}: at most one per family, each inside one of the network's cidrs of its family
    (members reach it directly on the network interface)."""
    raw = entry.get("address")
    if raw is None or raw == [] or raw == "":
        return {}
    values = [raw] if isinstance(raw, str) else as_list(raw, f"{where}.address")
    found = {}
    for index, value in enumerate(values):
        field_name = f"{where}.address" if isinstance(raw, str) else f"{where}.address[{index}]"
        address = parse_address(value.split("/", 1)[0] if isinstance(value, str) else value, field_name)
        family = family_of(address)
        if family in found:
            raise InputError(field_name, value, f"is a second {family} address (one per family: {found[family]})")
        own = [cidr for cidr in cidrs if family_of(cidr) == family]
        if not any(cidr_of(address) in cidr_of(cidr) for cidr in own):
            raise InputError(field_name, value, "is not inside the network's cidr "
                             + (", ".join(own) if own else f"(the network has no {family} cidr)"))
        found[family] = address
    return found


def validate(params, require_network_interface=True):
    """Module parameters -> EgressConfig; every error names the field."""
    ranges = cidr_list(params.get("ranges"), "ranges")
    networks = tuple(_validate_network(entry, index)
                     for index, entry in enumerate(as_list(params.get("networks"), "networks")))
    excluded = cidr_list(params.get("excluded_ranges"), "excluded_ranges")
    names = [network.name for network in networks]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise InputError(f"networks[{index}].name", name, "is used twice")
    network_interface = params.get("network_interface")
    if network_interface is None:
        if require_network_interface:
            raise InputError("network_interface",
                             problem="required (the interface the network's members arrive on)")
    else:
        validate_interface(network_interface, "network_interface")
    interface = params.get("interface")
    if interface is not None:
        validate_interface(interface, "interface")
    if params.get("reverse_nat") and not networks:
        raise InputError("reverse_nat", problem="needs networks (their cidrs are the masquerade destinations)")
    network_ranges = tuple(cidr for network in networks for cidr in network.ranges)
    all_ranges = unique(ranges + network_ranges) if network_ranges else ranges
    return EgressConfig(ranges=all_ranges, top_level_ranges=ranges, nat=bool(params.get("nat", True)),
                        network_interface=network_interface, interface=interface, networks=networks,
                        reverse_nat=bool(params.get("reverse_nat", False)),
                        forward_accept=bool(params.get("forward_accept", True)), excluded_ranges=excluded)


def families_in_use(ranges):
    used = {family_of(cidr) for cidr in ranges}
    return tuple(family for family in FAMILIES if family in used)


def desired_sysctls(ranges):
    return {FORWARDING_SYSCTLS[family]: "1" for family in families_in_use(ranges)}


def route_probes(cidr):
    """(family, address value) of the addresses whose route decides a range's outbound interface, best first.
    The first address of the range, except for IPv6 where it is the subnet-router anycast address (local on a
    router with a connected prefix); the last address next, for when the first is one of the host's own
    addresses. Values, not texts: 10,000 ranges are looked up without writing or parsing an address (and the
    cached interval is the one the plan's merge of the same ranges reads next)."""
    family, first, prefix, last = cidr_interval(cidr)
    if family == "ipv6" and prefix <= 126:
        first += 1
    return ((family, first),) if first == last else ((family, first), (family, last))
