# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validated model of the egress gateway and the backend-neutral plan derived from it (pure).

``validate(params)`` turns module parameters into an ``EgressConfig`` or raises ``ModelError`` naming the
field. ``build_plan(config, interfaces)`` turns a config plus the outbound interface of every range into
the ``Plan`` that the nftables and iptables renderers share.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field

INTERFACE_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,15}")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,63}")
FAMILIES = ("ipv4", "ipv6")
FORWARDING_SYSCTLS = {"ipv4": "net.ipv4.ip_forward", "ipv6": "net.ipv6.conf.all.forwarding"}


class ModelError(ValueError):
    """Invalid input; the message names the field and the bad value."""


@dataclass(frozen=True)
class Network:
    name: str
    cidrs: tuple
    ranges: tuple


@dataclass(frozen=True)
class EgressConfig:
    ranges: tuple  # normalised, deduplicated, includes every network's ranges
    nat: bool = True
    network_interface: str | None = None
    interface: str | None = None
    networks: tuple = ()
    reverse_nat: bool = False
    forward_accept: bool = True
    range_fields: dict = field(default_factory=dict, compare=False)  # range -> field that named it first

    def field_of(self, cidr):
        return self.range_fields.get(cidr, "ranges")


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


# ---- small pure helpers ---------------------------------------------------------------------
def family_of(cidr):
    # Every valid IPv6 text has a colon and no IPv4 text has one; the callers pass validated CIDRs, and
    # parsing each of 10,000 ranges again here was a tenth of a module run.
    return "ipv6" if ":" in cidr else "ipv4"


@functools.lru_cache(maxsize=65536)
def _fast_ipv4(text):
    """(first address as int, prefix length) of a plain dotted-quad IPv4 CIDR, host bits cleared; None for
    anything else, which ``ipaddress`` then parses (and words the error for). Same acceptance as
    ``ipaddress`` for what it handles: ASCII digits only, no leading zeros in octets, octets <= 255, prefix
    <= 32. String methods rather than a regular expression: half the time, and it runs for every range."""
    address, slash, prefix_text = text.partition("/")
    octets = address.split(".")
    if len(octets) != 4:
        return None
    value = 0
    for octet in octets:
        if not (0 < len(octet) <= 3 and octet.isascii() and octet.isdigit()) or (len(octet) > 1 and octet[0] == "0"):
            return None
        number = int(octet)
        if number > 255:
            return None
        value = value << 8 | number
    prefix = 32
    if slash:
        if not (0 < len(prefix_text) <= 2 and prefix_text.isascii() and prefix_text.isdigit()):
            return None
        prefix = int(prefix_text)
        if prefix > 32:
            return None
    return value & (0xFFFFFFFF ^ (0xFFFFFFFF >> prefix)), prefix


def _ipv4_text(value, prefix):
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}/{prefix}"


def normalise_cidr(value, field_name):
    """``10.1.2.3/8`` -> ``10.0.0.0/8``, ``2001:DB8::/32`` -> ``2001:db8::/32``; a bare address is a host."""
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise ModelError(f"{field_name}: {value!r} is not a valid CIDR")
    fast = _fast_ipv4(value)
    if fast is not None:
        return _ipv4_text(*fast)
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ModelError(f"{field_name}: {value!r} is not a valid CIDR") from None


def route_probe_addresses(cidr):
    """Addresses whose route decides a range's outbound interface, best first. The first address of the
    range, except for IPv6 where it is the subnet-router anycast address (local on a router with a
    connected prefix); the last address next, for when the first is one of the host's own addresses."""
    fast = _fast_ipv4(cidr)
    if fast is not None:
        first, prefix = fast
        last = first | (0xFFFFFFFF >> prefix)
        return list(dict.fromkeys([_ipv4_text(first, 32)[:-3], _ipv4_text(last, 32)[:-3]]))
    network = ipaddress.ip_network(cidr)
    first = network.network_address
    if network.version == 6 and network.prefixlen <= 126:
        first += 1
    return list(dict.fromkeys([str(first), str(network.broadcast_address)]))


def _interval(cidr):
    """(version, first, last) of a CIDR as integers."""
    fast = _fast_ipv4(cidr)
    if fast is not None:
        first, prefix = fast
        return 4, first, first | (0xFFFFFFFF >> prefix)
    network = ipaddress.ip_network(cidr, strict=False)
    return network.version, int(network.network_address), int(network.broadcast_address)


def cidrs_of_interval(first, last, bits):
    """The fewest CIDRs (first address, prefix length) that cover exactly first..last, in order."""
    blocks = []
    while first <= last:
        aligned = (first & -first).bit_length() - 1 if first else bits
        size = min(aligned, (last - first + 1).bit_length() - 1)
        blocks.append((first, bits - size))
        first += 1 << size
    return blocks


def collapse(cidrs):
    """Merge overlapping and adjacent CIDRs of one family into the fewest sorted networks.

    The same result as ``ipaddress.collapse_addresses`` (the fewest CIDRs covering a set of addresses are
    unique), computed on integer intervals: about 20 times faster, which matters at 10,000 ranges."""
    intervals = sorted(_interval(cidr) for cidr in cidrs)
    if not intervals:
        return ()
    if intervals[0][0] != intervals[-1][0]:
        raise TypeError("collapse: IPv4 and IPv6 CIDRs cannot be mixed")
    version = intervals[0][0]
    bits = 32 if version == 4 else 128
    merged = []  # [first, last, prefix length while the interval is still one input block, else None]
    for _version, first, last in intervals:
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1][1] = last
                merged[-1][2] = None
        else:
            merged.append([first, last, bits - (last - first + 1).bit_length() + 1])
    blocks = []
    for first, last, prefix in merged:
        if prefix is None:
            blocks += cidrs_of_interval(first, last, bits)
        else:
            blocks.append((first, prefix))
    if version == 4:
        return tuple(_ipv4_text(first, prefix) for first, prefix in blocks)
    return tuple(str(ipaddress.IPv6Network((first, prefix))) for first, prefix in blocks)


def unique(items):
    return tuple(dict.fromkeys(items))


def validate_interface(value, field_name):
    if not isinstance(value, str) or not INTERFACE_PATTERN.fullmatch(value) or value in (".", ".."):
        raise ModelError(f"{field_name}: {value!r} is not a valid interface name "
                         "(1-15 characters of A-Z a-z 0-9 _ . @ -)")
    return value


def validate_name(value, field_name):
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise ModelError(f"{field_name}: {value!r} is not a valid name (1-63 characters of A-Z a-z 0-9 _ . -)")
    return value


def _as_list(value, field_name):
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ModelError(f"{field_name}: must be a list, got {value!r}")
    return list(value)


def _cidr_list(value, field_name):
    return unique(normalise_cidr(item, f"{field_name}[{index}]")
                  for index, item in enumerate(_as_list(value, field_name)))


def _validate_network(entry, index):
    where = f"networks[{index}]"
    if not isinstance(entry, dict):
        raise ModelError(f"{where}: must be a dict with name, cidr and ranges, got {entry!r}")
    unknown = sorted(set(entry) - {"name", "cidr", "ranges"})
    if unknown:
        raise ModelError(f"{where}: unknown key(s) {', '.join(unknown)} (expected name, cidr, ranges)")
    name = validate_name(entry.get("name"), f"{where}.name")
    raw_cidr = entry.get("cidr")
    if isinstance(raw_cidr, str):
        cidrs = (normalise_cidr(raw_cidr, f"{where}.cidr"),)
    else:
        cidrs = _cidr_list(raw_cidr, f"{where}.cidr")
    if not cidrs:
        raise ModelError(f"{where}.cidr: at least one CIDR is required")
    ranges = _cidr_list(entry.get("ranges"), f"{where}.ranges")
    cidr_families = {family_of(cidr) for cidr in cidrs}
    for range_index, cidr in enumerate(ranges):
        if family_of(cidr) not in cidr_families:
            raise ModelError(f"{where}.ranges[{range_index}]: {cidr} is {family_of(cidr)} but network "
                             f"{name} has no {family_of(cidr)} cidr")
    return Network(name=name, cidrs=cidrs, ranges=ranges)


def validate(params, require_network_interface=True):
    """Module parameters -> EgressConfig; every error names the field."""
    ranges = _cidr_list(params.get("ranges"), "ranges")
    networks = tuple(_validate_network(entry, index)
                     for index, entry in enumerate(_as_list(params.get("networks"), "networks")))
    names = [network.name for network in networks]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ModelError(f"networks[{index}].name: {name!r} is used twice")
    network_interface = params.get("network_interface")
    if network_interface is None:
        if require_network_interface:
            raise ModelError("network_interface: required (the interface the network's members arrive on)")
    else:
        validate_interface(network_interface, "network_interface")
    interface = params.get("interface")
    if interface is not None:
        validate_interface(interface, "interface")
    if params.get("reverse_nat") and not networks:
        raise ModelError("reverse_nat: needs networks (their cidrs are the masquerade destinations)")
    range_fields = {}
    for index, cidr in enumerate(ranges):
        range_fields.setdefault(cidr, f"ranges[{index}]")
    for network_index, network in enumerate(networks):
        for index, cidr in enumerate(network.ranges):
            range_fields.setdefault(cidr, f"networks[{network_index}].ranges[{index}]")
    all_ranges = unique(ranges + tuple(cidr for network in networks for cidr in network.ranges))
    return EgressConfig(ranges=all_ranges, range_fields=range_fields, nat=bool(params.get("nat", True)),
                        network_interface=network_interface, interface=interface, networks=networks,
                        reverse_nat=bool(params.get("reverse_nat", False)),
                        forward_accept=bool(params.get("forward_accept", True)))


def families_in_use(ranges):
    used = {family_of(cidr) for cidr in ranges}
    return tuple(family for family in FAMILIES if family in used)


def desired_sysctls(ranges):
    return {FORWARDING_SYSCTLS[family]: "1" for family in families_in_use(ranges)}


# ---- plan -----------------------------------------------------------------------------------
def _group_by_interface(ranges, interfaces):
    """(family, interface) -> ranges, in the order the ranges were given."""
    groups = {}
    for cidr in ranges:
        groups.setdefault((family_of(cidr), interfaces[cidr]), []).append(cidr)
    return groups


def build_plan(config, interfaces):
    """Config + {range: outbound interface} -> Plan. Every range must have an interface."""
    paths = []
    if config.networks:
        for network in config.networks:
            for (family, ifname), ranges in _group_by_interface(network.ranges, interfaces).items():
                sources = collapse(c for c in network.cidrs if family_of(c) == family)
                paths.append(Path(family, ifname, collapse(ranges), network.name, sources))
    else:
        for (family, ifname), ranges in _group_by_interface(config.ranges, interfaces).items():
            paths.append(Path(family, ifname, collapse(ranges)))
    union = {}
    for family in FAMILIES:
        members = [cidr for cidr in config.ranges if family_of(cidr) == family]
        family_paths = [path for path in paths if path.family == family]
        if not config.networks and len(family_paths) == 1:
            union[family] = family_paths[0].destinations  # every range of the family, already collapsed
        elif members:
            union[family] = collapse(members)
    return Plan(network_interface=config.network_interface, nat=config.nat,
                forward_accept=config.forward_accept, reverse_nat=config.reverse_nat,
                segmented=bool(config.networks), paths=tuple(paths), union=union)


def gathered_config(backend, plain_ranges, union, networks, interfaces, **flags):
    """The module input that reproduces what a backend read back from the host (``gathered``).

    ``union`` is every range in our sets; ranges no network lists are reported at the top level.
    ``flags``: nat, network_interface, reverse_nat, forward_accept.
    """
    covered = {cidr for entry in networks.values() for cidr in entry["ranges"]}
    ranges = list(dict.fromkeys(plain_ranges + [c for c in union if c not in covered]))
    gathered = {"state": "present", "backend": backend, "ranges": ranges, "nat": flags["nat"],
                "network_interface": flags["network_interface"], "networks": list(networks.values()),
                "reverse_nat": flags["reverse_nat"], "forward_accept": flags["forward_accept"]}
    outbound = sorted(set(interfaces.values()))
    if len(outbound) == 1:
        gathered["interface"] = outbound[0]
    return gathered, interfaces
