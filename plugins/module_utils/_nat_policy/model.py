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
from dataclasses import dataclass

from ansible_collections.netkit.egress.plugins.module_utils import _net
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError

ROLES = ("source", "gateway")
STATES = ("merged", "replaced", "overridden", "deleted", "gathered", "rendered")
LIST_FIELDS = ("sources", "destinations", "excluded_destinations")
MAX_SLOTS = 4095

DEFAULT_MARK_MASK = 0x0FFF0000  # 4,095 egress IPs per node
DEFAULT_MARK_BASE = 0x00010000


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
        return _net.family_of(self.egress_ip)

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
        return _net.family_of(self.via)

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

    # ip rule walks its rules one by one for every routed packet, so the slot rules sit at the leaves of a
    # binary tree over the mark's value (see routing.desired_rules), at fixed priorities:
    #   rule_priority_base             no mark of ours: goto end_priority
    #   + 1 .. + 2**(depth + 1) - 1    the tree in preorder: a node's left subtree right after it
    #   end_priority                   nop
    @property
    def mark_shift(self):
        return self.mark_step.bit_length() - 1

    def field(self, slot):
        """The mark of ``slot`` within the mask, as a number from 1."""
        return self.mark(slot) >> self.mark_shift

    @functools.cached_property
    def tree_depth(self):
        return self.field(self.slot_count - 1).bit_length() if self.slot_count else 0

    @property
    def tree_priority(self):
        return self.rule_priority_base + 1

    @property
    def end_priority(self):
        return self.tree_priority + (1 << (self.tree_depth + 1)) - 1

    @property
    def priority_span(self):
        """How many rule priorities from rule_priority_base are ours."""
        return self.end_priority - self.rule_priority_base + 1


# ---- addresses and CIDRs (parsed by _net; these add only the wording and the bare host) ---------
def bare_host(text):
    """A policy shows a host without its prefix length (``10.0.0.5``, as nft lists a set element); every
    other CIDR as ``_net`` prints it."""
    if text.endswith("/128") or (text.endswith("/32") and ":" not in text):
        return text.rpartition("/")[0]
    return text


def canonical_cidrs(cidrs):
    """Sorted, merged CIDR texts, IPv4 first, hosts bare (the form nft's auto-merge interval sets hold)
    of CIDR texts or ``_net.Cidr``s."""
    return tuple(bare_host(text) for text in _net.collapse_families(cidrs))


def parse_cidr(value, field):
    """A ``_net.Cidr`` (a bare address is a host; host bits are cleared)."""
    try:
        return _net.parse_cidr(value, field, strip=True)
    except InputError:
        raise InputError(field, value, "is not a valid CIDR or address") from None


def parse_address(value, field):
    try:
        return _net.parse_address(value, field)
    except InputError:
        raise InputError(field, value, "is not a valid IP address") from None


def other_family(egress_ip, items):
    """Positions of the addresses or CIDRs in ``items`` (texts or ``_net.Cidr``s) that are not of the
    address family of ``egress_ip``. One policy is one address family (a dual-stack workload needs one
    policy per family): the module refuses such entries, the egress NAT planner leaves them out and
    reports them."""
    family = _net.family_of(egress_ip)
    return [position for position, item in enumerate(items)
            if (item.family if isinstance(item, _net.Cidr) else _net.family_of(item)) != family]


# ---- numbering ------------------------------------------------------------------------------
def parse_int(value, where, minimum, maximum):
    try:
        number = value if isinstance(value, int) else int(str(value).strip(), 0)
    except ValueError:
        raise InputError(where, value, "is not an integer") from None
    if not minimum <= number <= maximum:
        raise InputError(where, value, f"must be between {minimum} and {maximum}")
    return number


def build_numbering(params):
    mask = parse_int(params.get("mark_mask", DEFAULT_MARK_MASK), "mark_mask", 1, 0xFFFFFFFF)
    if (mask + (mask & -mask)) & mask:
        raise InputError("mark_mask", problem=f"{mask:#010x} must be one run of contiguous bits")
    base = parse_int(params.get("mark_base", DEFAULT_MARK_BASE), "mark_base", 1, 0xFFFFFFFF)
    if base & ~mask:
        raise InputError("mark_base", problem=f"{base:#010x} has bits outside mark_mask {mask:#010x}")
    numbering = Numbering(
        mark_base=base, mark_mask=mask,
        route_table_base=parse_int(params.get("route_table_base", 21000), "route_table_base", 1,
                                   0xFFFFFFFF - MAX_SLOTS),
        rule_priority_base=parse_int(params.get("rule_priority_base", 21000), "rule_priority_base",
                                     1, 32765),
        route_protocol=parse_int(params.get("route_protocol", 201), "route_protocol", 5, 255))
    if base % numbering.mark_step:
        raise InputError("mark_base", problem=f"{base:#010x} is not a multiple of the lowest bit of "
                                              f"mark_mask {mask:#010x}")
    if numbering.end_priority > 32765:
        raise InputError("rule_priority_base", numbering.rule_priority_base,
                         f"leaves no room for the {numbering.priority_span} rule priorities that mark_mask "
                         f"{mask:#010x} needs below the main table's 32766")
    reserved = {252, 253, 254, 255}
    tables = set(range(numbering.route_table_base, numbering.route_table_base + numbering.slot_count))
    if tables & reserved:
        raise InputError("route_table_base", problem=f"{numbering.route_table_base} overlaps the kernel's "
                                                     "reserved tables 252-255 (default, main, local)")
    return numbering


# ---- policies -------------------------------------------------------------------------------
def validate_policy_entry(entry, index, require_all):
    """Check one ``config`` entry; return it with canonical values (None for absent fields)."""
    if not isinstance(entry, dict):
        raise InputError(f"config[{index}]", problem=f"must be a dictionary, got {entry!r}")
    name = entry.get("name")
    try:
        _net.validate_name(name, f"config[{index}].name")
    except InputError:
        raise InputError(f"config[{index}].name", name, f"must match ^{_net.NAME_PATTERN.pattern}$") from None
    where = f"config[{index}] ({name})"
    clean = {"name": name}
    egress = entry.get("egress_ip")
    clean["egress_ip"] = None if egress in (None, "") else parse_address(egress, f"{where}.egress_ip")
    for list_field in LIST_FIELDS:
        values = entry.get(list_field)
        if values is None:
            clean[list_field] = None
            continue
        clean[list_field] = [parse_cidr(value, f"{where}.{list_field}[{position}]")
                             for position, value in enumerate(_net.as_list(values, f"{where}.{list_field}"))]
    interface = entry.get("interface")
    if interface not in (None, ""):
        try:
            _net.validate_interface(interface, f"{where}.interface")
        except InputError:
            raise InputError(f"{where}.interface", interface,
                             f"must match ^{_net.INTERFACE_PATTERN.pattern}$") from None
    clean["interface"] = interface or None
    if require_all:
        require_complete(clean, where)
    return clean


def require_complete(clean, where):
    if clean["egress_ip"] is None:
        raise InputError(f"{where}.egress_ip", problem="is required")
    for list_field in ("sources", "destinations"):
        if not clean[list_field]:
            raise InputError(f"{where}.{list_field}", problem="needs at least one CIDR")
    egress_ip = clean["egress_ip"]
    for list_field in LIST_FIELDS:
        cidrs = clean[list_field] or []
        for position in other_family(egress_ip, cidrs)[:1]:
            raise InputError(
                f"{where}.{list_field}[{position}]",
                problem=f"{bare_host(cidrs[position].text)} is {ip_version(cidrs[position].family)} but "
                        f"egress_ip {egress_ip} is {ip_version(_net.family_of(egress_ip))}; write one policy per "
                        "address family")


def ip_version(family):
    return "IPv6" if family == "ipv6" else "IPv4"


def policy_from_clean(clean):
    return Policy(
        name=clean["name"],
        egress_ip=clean["egress_ip"],
        sources=canonical_cidrs(clean["sources"]),
        destinations=canonical_cidrs(clean["destinations"]),
        excluded_destinations=canonical_cidrs(clean["excluded_destinations"] or []),
        interface=clean["interface"])


def clean_from_policy(policy):
    return {
        "name": policy.name,
        "egress_ip": policy.egress_ip,
        "sources": [_net.cidr_of(text) for text in policy.sources],
        "destinations": [_net.cidr_of(text) for text in policy.destinations],
        "excluded_destinations": [_net.cidr_of(text) for text in policy.excluded_destinations],
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
            raise InputError(f"config[{index}].name", clean["name"], f"is also config[{seen[clean['name']]}]")
        seen[clean["name"]] = index
        cleaned.append(clean)
    return cleaned


def validate_return_routes(return_routes, role):
    if return_routes is None:
        return None
    if role != "gateway" and return_routes:
        raise InputError("return_routes", problem="only a gateway needs routes back to the workloads "
                                                  f"(role is {role!r})")
    routes = []
    seen = set()
    for index, entry in enumerate(return_routes):
        where = f"return_routes[{index}]"
        if not isinstance(entry, dict):
            raise InputError(where, problem=f"must be a dictionary, got {entry!r}")
        destination = parse_cidr(entry.get("destination"), f"{where}.destination").text
        via = parse_address(entry.get("via"), f"{where}.via")
        if _net.family_of(destination) != _net.family_of(via):
            raise InputError(f"{where}.via", problem=f"{via} is not of the family of destination {destination}")
        if destination in seen:
            raise InputError(f"{where}.destination", problem=f"{destination} is listed twice")
        seen.add(destination)
        routes.append(ReturnRoute(destination=destination, via=via))
    return sorted(routes, key=return_route_sort_key)


def return_route_sort_key(route):
    return _net.cidr_of(route.destination)


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
    taken = set(slots.values())
    free = (slot for slot in range(slot_count) if slot not in taken)
    for egress in wanted:
        if egress not in slots:
            slot = next(free, None)
            if slot is None:
                raise InputError("config", problem=f"{len(wanted)} egress IPs need more marks than "
                                                   f"mark_mask allows ({slot_count})")
            slots[egress] = slot
    return slots


def address_sort_key(address):
    return _net.address_value(address)


def policies_as_dicts(policies):
    return [policy.to_dict() for policy in sorted(policies, key=lambda policy: policy.name)]
