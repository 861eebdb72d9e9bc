# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backend-neutral plan of the egress gateway (pure): config + outbound interfaces -> ``Plan``, and
back from what a backend read on the host to module parameters (``gathered_params``).

``excluded_ranges`` is applied here once: every path's destinations and the union are the ranges minus
the excluded CIDRs, so both backends neither accept, drop nor masquerade traffic to an excluded part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.netkit.egress.plugins.module_utils._net import FAMILIES, collapse, family_of, subtract


@dataclass(frozen=True)
class Path:
    """Traffic from ``network_interface`` (optionally from ``sources``) to ``destinations`` out of
    ``interface``: one accept rule, one masquerade rule, one set of destinations."""
    family: str
    interface: str
    destinations: tuple
    network: str | None = None
    sources: tuple = ()


@dataclass(frozen=True)
class Plan:
    network_interface: str
    nat: bool
    forward_accept: bool
    reverse_nat: bool
    segmented: bool
    paths: tuple = ()
    union: dict = field(default_factory=dict)  # family -> every egress range of that family

    @property
    def families(self):
        return tuple(family for family in FAMILIES if self.union.get(family))


def effective_ranges(config):
    """The ranges (top level and networks') that keep some address once the excluded parts are cut out:
    only those need an outbound interface."""
    if not config.excluded_ranges:
        return config.ranges
    return tuple(cidr for cidr in config.ranges if subtract([cidr], config.excluded_ranges))


def _destinations(ranges, excluded):
    return subtract(ranges, excluded) if excluded else collapse(ranges)


def _group_by_interface(ranges, interfaces):
    """(family, interface) -> ranges, in the order the ranges were given (ranges without an interface,
    wholly excluded, are left out)."""
    groups = {}
    for cidr in ranges:
        if cidr in interfaces:
            groups.setdefault((family_of(cidr), interfaces[cidr]), []).append(cidr)
    return groups


def build_plan(config, interfaces):
    """Config + {range: outbound interface} -> Plan. Every range of ``effective_ranges`` needs an interface."""
    excluded = config.excluded_ranges
    paths = []
    if config.networks:
        for network in config.networks:
            for (family, ifname), ranges in _group_by_interface(network.ranges, interfaces).items():
                destinations = _destinations(ranges, excluded)
                if destinations:
                    sources = collapse(c for c in network.cidrs if family_of(c) == family)
                    paths.append(Path(family, ifname, destinations, network.name, sources))
    else:
        for (family, ifname), ranges in _group_by_interface(config.ranges, interfaces).items():
            destinations = _destinations(ranges, excluded)
            if destinations:
                paths.append(Path(family, ifname, destinations))
    union = {}
    for family in FAMILIES:
        family_paths = [path for path in paths if path.family == family]
        if not config.networks and len(family_paths) == 1:
            union[family] = family_paths[0].destinations  # every range of the family, already collapsed
            continue
        members = [cidr for cidr in config.ranges if family_of(cidr) == family]
        if members:
            union[family] = _destinations(members, excluded)
    return Plan(network_interface=config.network_interface, nat=config.nat,
                forward_accept=config.forward_accept, reverse_nat=config.reverse_nat,
                segmented=bool(config.networks), paths=tuple(paths), union=union)


def gathered_params(backend, plain_ranges, union, networks, interfaces, **flags):
    """The module input that reproduces what a backend read back from the host (``gathered``), and the
    outbound interface of every range read.

    ``union`` is every range in our sets; ranges no network lists are reported at the top level. What the
    host holds is the effective state: excluded parts are already cut out of the ranges, so
    ``excluded_ranges`` is always empty here (and the round trip still a no-op).
    ``flags``: nat, network_interface, reverse_nat, forward_accept.
    """
    covered = {cidr for entry in networks.values() for cidr in entry["ranges"]}
    ranges = list(dict.fromkeys(plain_ranges + [c for c in union if c not in covered]))
    gathered = {"state": "present", "backend": backend, "ranges": ranges, "excluded_ranges": [],
                "nat": flags["nat"], "network_interface": flags["network_interface"],
                "networks": list(networks.values()), "reverse_nat": flags["reverse_nat"],
                "forward_accept": flags["forward_accept"]}
    outbound = sorted(set(interfaces.values()))
    if len(outbound) == 1:
        gathered["interface"] = outbound[0]
    return gathered, interfaces
