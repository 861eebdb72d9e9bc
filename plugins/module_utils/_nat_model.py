# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validated model of egress NAT policies (pure: no host access).

A policy steers traffic from ``sources`` to ``destinations`` (minus ``excluded_destinations``) out
with the source address ``egress_ip``. One policy is one address family: every CIDR in it must have
the family of its ``egress_ip`` (a dual-stack workload needs one policy per family).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections import namedtuple
from dataclasses import dataclass, field

from ansible_collections.netkit.egress.plugins.module_utils._net import cidrs_of_interval

POLICY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
INTERFACE_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")
ROLES = ("source", "gateway")
STATES = ("merged", "replaced", "overridden", "deleted", "gathered", "rendered")
LIST_FIELDS = ("sources", "destinations", "excluded_destinations")
MAX_SLOTS = 256

DEFAULT_MARK_MASK = 0x00FF0000
DEFAULT_MARK_BASE = 0x00010000


class NatConfigError(ValueError):
    """Invalid input; the message names the field and the bad value."""


@dataclass(frozen=True)
class Policy:
    name: str
    egress_ip: str
    sources: tuple
    destinations: tuple
    excluded_destinations: tuple = ()
    interface: str | None = None

    @property
    def family(self):
        return address_family(self.egress_ip)

    def to_dict(self):
        return {
            "name": self.name,
            "egress_ip": self.egress_ip,
            "sources": list(self.sources),
            "destinations": list(self.destinations),
            "excluded_destinations": list(self.excluded_destinations),
            "interface": self.interface,
        }


@dataclass(frozen=True)
class ReturnRoute:
    destination: str
    via: str

    @property
    def family(self):
        return address_family(self.via)

    def to_dict(self):
        return {"destination": self.destination, "via": self.via}


@dataclass(frozen=True)
class Numbering:
    """Where the policy routing lives: marks, route tables and rule priorities per egress slot."""
    mark_base: int = DEFAULT_MARK_BASE
    mark_mask: int = DEFAULT_MARK_MASK
    route_table_base: int = 21000
    rule_priority_base: int = 21000
    route_protocol: int = 201

    @property
    def mark_step(self):
        return self.mark_mask & -self.mark_mask

    @functools.cached_property
    def slot_count(self):
        # Cached: read back once per held rule (1,000 policies: 1,000 loops of up to 256 steps).
        count = 0
        while count < MAX_SLOTS and self.fits(self.mark_base + count * self.mark_step):
            count += 1
        return count

    def fits(self, mark):
        return mark & ~self.mark_mask == 0 and mark <= self.mark_mask

    def mark(self, slot):
        return self.mark_base + slot * self.mark_step

    def slot_of_mark(self, mark):
        offset = mark - self.mark_base
        if offset < 0 or offset % self.mark_step:
            return None
        slot = offset // self.mark_step
        return slot if slot < self.slot_count else None

    def table(self, slot):
        return self.route_table_base + slot

    def priority(self, slot):
        return self.rule_priority_base + slot


@dataclass
class NatConfig:
    role: str
    policies: list = field(default_factory=list)
    return_routes: list | None = None
    numbering: Numbering = field(default_factory=Numbering)


# ---- addresses ------------------------------------------------------------------------------
def address_family(address):
    return "ipv6" if parse_address_value(address)[0] == 6 else "ipv4"


class Network(namedtuple("Network", "version first prefixlen")):
    """A parsed CIDR as integers (first address with host bits cleared): 10,000 of them are parsed,
    merged and printed in every run, which ``ipaddress`` objects made the largest cost of a run."""
    __slots__ = ()

    @property
    def max_prefixlen(self):
        return 32 if self.version == 4 else 128

    @property
    def last(self):
        return self.first | ((1 << (self.max_prefixlen - self.prefixlen)) - 1)

    def __str__(self):
        """The ``ipaddress`` text: always with the prefix length (``10.0.0.5/32``)."""
        return f"{address_text(self.version, self.first)}/{self.prefixlen}"


def _ipv4_int(text):
    """The integer of a plain dotted-quad IPv4 text, or None. ``inet_pton`` takes exactly four decimal
    octets <= 255 without leading zeros, a subset of what ``ipaddress`` takes (which parses, and words the
    error for, everything else), at a tenth of its cost."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError, TypeError):
        return None


def address_text(version, value):
    if version == 4:
        return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
    return str(ipaddress.IPv6Address(value))


def parse_network(text, strict=False):
    """``Network`` of a CIDR or address text, host bits cleared (or refused with ``strict``, as
    ``ipaddress.ip_network`` does); ValueError if invalid."""
    address, slash, prefix = text.partition("/")
    value = _ipv4_int(address)
    if value is not None:
        if not slash:
            return Network(4, value, 32)
        if prefix.isascii() and prefix.isdigit() and int(prefix) <= 32:
            host_bits = 0xFFFFFFFF >> int(prefix)
            if value & host_bits:
                if strict:
                    raise ValueError(f"{text} has host bits set")
                value &= ~host_bits
            return Network(4, value, int(prefix))
    network = ipaddress.ip_network(text, strict=strict)
    return Network(network.version, int(network.network_address), network.prefixlen)


def address_value(text):
    """(version, int) of an address text; ValueError if invalid."""
    value = _ipv4_int(text)
    if value is not None:
        return 4, value
    address = ipaddress.ip_address(text)
    return address.version, int(address)


# The same few egress IPs are asked for their family and sort key again and again.
parse_address_value = functools.lru_cache(maxsize=4096)(address_value)


def network_text(network):
    """``10.0.0.5/32`` reads as ``10.0.0.5``; everything else as its canonical CIDR."""
    if network.prefixlen == network.max_prefixlen:
        return address_text(network.version, network.first)
    return f"{address_text(network.version, network.first)}/{network.prefixlen}"


def canonical_intervals(intervals):
    """``(version, first, last)`` address intervals -> sorted, merged CIDR texts (hosts bare).

    The fewest CIDRs covering a set of addresses are unique, so this is exactly what
    ``ipaddress.collapse_addresses`` gives (checked against it in the unit tests), on integers."""
    merged = []
    for version, first, last in sorted(intervals):
        if merged and merged[-1][0] == version and first <= merged[-1][2] + 1:
            if last > merged[-1][2]:
                merged[-1][2] = last
        else:
            merged.append([version, first, last])
    texts = []
    for version, first, last in merged:
        bits = 32 if version == 4 else 128
        size = last - first + 1
        if size & (size - 1) == 0 and first & (size - 1) == 0:
            blocks = ((first, bits + 1 - size.bit_length()),)  # one CIDR already: the common case
        else:
            blocks = cidrs_of_interval(first, last, bits)
        for start, prefix in blocks:
            if version == 4:
                text = f"{start >> 24}.{start >> 16 & 255}.{start >> 8 & 255}.{start & 255}"
            else:
                text = address_text(version, start)
            texts.append(text if prefix == bits else f"{text}/{prefix}")
    return tuple(texts)


def canonical_networks(networks):
    """Sorted, merged CIDR texts: the form nft's auto-merge interval sets hold, too."""
    return canonical_intervals([(network.version, network.first, network.last) for network in networks])


def parse_cidr(text, where):
    try:
        return parse_network(str(text).strip())
    except ValueError:
        raise NatConfigError(f"{where}: {text!r} is not a valid CIDR or address") from None


def parse_address(text, where):
    try:
        return ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise NatConfigError(f"{where}: {text!r} is not a valid IP address") from None


# ---- numbering ------------------------------------------------------------------------------
def parse_int(value, where, minimum, maximum):
    try:
        number = value if isinstance(value, int) else int(str(value).strip(), 0)
    except ValueError:
        raise NatConfigError(f"{where}: {value!r} is not an integer") from None
    if not minimum <= number <= maximum:
        raise NatConfigError(f"{where}: {value!r} must be between {minimum} and {maximum}")
    return number


def build_numbering(params):
    mask = parse_int(params.get("mark_mask", DEFAULT_MARK_MASK), "mark_mask", 1, 0xFFFFFFFF)
    base = parse_int(params.get("mark_base", DEFAULT_MARK_BASE), "mark_base", 1, 0xFFFFFFFF)
    if base & ~mask:
        raise NatConfigError(f"mark_base: {base:#010x} has bits outside mark_mask {mask:#010x}")
    numbering = Numbering(
        mark_base=base, mark_mask=mask,
        route_table_base=parse_int(params.get("route_table_base", 21000), "route_table_base", 1,
                                   0xFFFFFFFF - MAX_SLOTS),
        rule_priority_base=parse_int(params.get("rule_priority_base", 21000), "rule_priority_base",
                                     1, 32765 - MAX_SLOTS),
        route_protocol=parse_int(params.get("route_protocol", 201), "route_protocol", 5, 255))
    if base % numbering.mark_step:
        raise NatConfigError(f"mark_base: {base:#010x} is not a multiple of the lowest bit of "
                             f"mark_mask {mask:#010x}")
    reserved = {252, 253, 254, 255}
    tables = set(range(numbering.route_table_base, numbering.route_table_base + numbering.slot_count))
    if tables & reserved:
        raise NatConfigError(f"route_table_base: {numbering.route_table_base} overlaps the kernel's "
                             "reserved tables 252-255 (default, main, local)")
    return numbering


# ---- policies -------------------------------------------------------------------------------
def validate_policy_entry(entry, index, require_all):
    """Check one ``config`` entry; return it with canonical values (None for absent fields)."""
    if not isinstance(entry, dict):
        raise NatConfigError(f"config[{index}]: must be a dictionary, got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not POLICY_NAME.fullmatch(name):
        raise NatConfigError(f"config[{index}].name: {name!r} must match {POLICY_NAME.pattern}")
    where = f"config[{index}] ({name})"
    clean = {"name": name}
    egress = entry.get("egress_ip")
    clean["egress_ip"] = None if egress in (None, "") else str(parse_address(egress, f"{where}.egress_ip"))
    for list_field in LIST_FIELDS:
        values = entry.get(list_field)
        if values is None:
            clean[list_field] = None
            continue
        if isinstance(values, str) or not isinstance(values, (list, tuple)):
            raise NatConfigError(f"{where}.{list_field}: must be a list, got {values!r}")
        clean[list_field] = [parse_cidr(value, f"{where}.{list_field}[{position}]")
                             for position, value in enumerate(values)]
    interface = entry.get("interface")
    if interface not in (None, "") and (not isinstance(interface, str) or not INTERFACE_NAME.fullmatch(interface)
                                        or interface in (".", "..")):
        raise NatConfigError(f"{where}.interface: {interface!r} must match {INTERFACE_NAME.pattern}")
    clean["interface"] = interface or None
    if require_all:
        require_complete(clean, where)
    return clean


def require_complete(clean, where):
    if clean["egress_ip"] is None:
        raise NatConfigError(f"{where}.egress_ip: is required")
    for list_field in ("sources", "destinations"):
        if not clean[list_field]:
            raise NatConfigError(f"{where}.{list_field}: needs at least one CIDR")
    family_version = parse_address_value(clean["egress_ip"])[0]
    for list_field in LIST_FIELDS:
        for position, network in enumerate(clean[list_field] or []):
            if network.version != family_version:
                raise NatConfigError(
                    f"{where}.{list_field}[{position}]: {network_text(network)} is IPv{network.version} "
                    f"but egress_ip {clean['egress_ip']} is IPv{family_version}; write one policy per "
                    "address family")


def policy_from_clean(clean):
    return Policy(
        name=clean["name"],
        egress_ip=clean["egress_ip"],
        sources=canonical_networks(clean["sources"]),
        destinations=canonical_networks(clean["destinations"]),
        excluded_destinations=canonical_networks(clean["excluded_destinations"] or []),
        interface=clean["interface"])


def clean_from_policy(policy):
    return {
        "name": policy.name,
        "egress_ip": policy.egress_ip,
        "sources": [parse_network(text, strict=True) for text in policy.sources],
        "destinations": [parse_network(text, strict=True) for text in policy.destinations],
        "excluded_destinations": [parse_network(text, strict=True) for text in policy.excluded_destinations],
        "interface": policy.interface,
    }


def validate_config_entries(config, state):
    """All entries, checked before anything else happens. Returns cleaned entries."""
    config = config or []
    require_all = state in ("replaced", "overridden", "rendered")
    cleaned = []
    seen = {}
    for index, entry in enumerate(config):
        clean = validate_policy_entry(entry, index, require_all)
        if clean["name"] in seen:
            raise NatConfigError(f"config[{index}].name: {clean['name']!r} is also config[{seen[clean['name']]}]")
        seen[clean["name"]] = index
        cleaned.append(clean)
    return cleaned


def validate_return_routes(return_routes, role):
    if return_routes is None:
        return None
    if role != "gateway" and return_routes:
        raise NatConfigError("return_routes: only a gateway needs routes back to the workloads "
                             f"(role is {role!r})")
    routes = []
    seen = set()
    for index, entry in enumerate(return_routes):
        where = f"return_routes[{index}]"
        if not isinstance(entry, dict):
            raise NatConfigError(f"{where}: must be a dictionary, got {entry!r}")
        destination = parse_cidr(entry.get("destination"), f"{where}.destination")
        via = parse_address(entry.get("via"), f"{where}.via")
        if destination.version != via.version:
            raise NatConfigError(f"{where}.via: {via} is not of the family of destination {destination}")
        key = (destination.version, str(destination))
        if key in seen:
            raise NatConfigError(f"{where}.destination: {destination} is listed twice")
        seen.add(key)
        routes.append(ReturnRoute(destination=str(destination), via=str(via)))
    return sorted(routes, key=return_route_sort_key)


def return_route_sort_key(route):
    return tuple(parse_network(route.destination, strict=True))


# ---- states ---------------------------------------------------------------------------------
def merge_clean(existing, given):
    """``merged``: lists grow (never shrink), scalars given replace scalars held."""
    merged = dict(existing)
    for key, value in given.items():
        if value is None:
            continue
        if key in LIST_FIELDS:
            merged[key] = list(existing.get(key) or []) + list(value)
        else:
            merged[key] = value
    return merged


def desired_policies(state, cleaned, before):
    """The policies that should exist after a run in ``state``, sorted by name."""
    held = {policy.name: policy for policy in before}
    if state == "overridden":
        wanted = {}
    else:
        wanted = dict(held)
    if state == "deleted":
        if not cleaned:
            return []
        for clean in cleaned:
            wanted.pop(clean["name"], None)
        return sorted(wanted.values(), key=lambda policy: policy.name)
    for index, clean in enumerate(cleaned):
        if state == "merged" and clean["name"] in held:
            clean = merge_clean(clean_from_policy(held[clean["name"]]), clean)
        require_complete(clean, f"config[{index}] ({clean['name']})")
        wanted[clean["name"]] = policy_from_clean(clean)
    return sorted(wanted.values(), key=lambda policy: policy.name)


def allocate_slots(policies, held_slots, slot_count):
    """Egress IP -> slot. Slots already held keep their number (their marks sit in conntrack
    entries of live connections); new egress IPs take the lowest free slot."""
    wanted = sorted({policy.egress_ip for policy in policies}, key=address_sort_key)
    slots = {egress: held_slots[egress] for egress in wanted if egress in held_slots}
    free = (slot for slot in range(slot_count) if slot not in slots.values())
    for egress in wanted:
        if egress not in slots:
            slot = next(free, None)
            if slot is None:
                raise NatConfigError(f"config: {len(wanted)} egress IPs need more marks than mark_mask "
                                     f"allows ({slot_count})")
            slots[egress] = slot
    return slots


def address_sort_key(address):
    return parse_address_value(address)


def policies_as_dicts(policies):
    return [policy.to_dict() for policy in sorted(policies, key=lambda policy: policy.name)]
