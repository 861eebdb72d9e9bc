# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel's ``ip route get`` answer for many addresses, from one read of the routing rules and tables.

Pure functions only. At 10,000 ranges one ``ip -batch`` of ``route get`` lines costs a quarter of a module
run; the routing table itself is usually a handful of routes. So the lookup is done here, but only where it
is certain to give the kernel's answer:

* the rules are the kernel's defaults (``local``, ``main``, ``default`` tables, matching every packet), so
  the tables are consulted in that order and the first table with a match decides;
* within a table the longest prefix wins, and among routes to the same prefix the lowest metric;
* the winning route is a plain unicast route with one device (its device is the answer), a ``local`` or
  ``anycast`` route of the local table (the kernel answers ``dev lo``), an IPv4 ``blackhole``,
  ``unreachable`` or ``prohibit`` route (the kernel answers with an error: no route), or ``throw`` (go on to
  the next table).

Anything else (policy rules, multipath or nexthop-object routes, TOS or source-specific routes, broadcast or
multicast entries, dead or link-down next hops, equal-metric ties) is ``UNKNOWN``: the caller asks the kernel
(``ip route get``) for those addresses, so the answer is always the kernel's own.
"""

from __future__ import annotations

import bisect

from ansible_collections.netkit.egress.plugins.module_utils._net import BITS, address_value, cidr_of

UNKNOWN = "unknown"
DEFAULT_RULES = {(0, "local"), (32766, "main"), (32767, "default")}
_NO_ROUTE_TYPES = {"ipv4": {"blackhole", "unreachable", "prohibit"}, "ipv6": set()}
_LOCAL_TYPES = {"local", "anycast"}
_RULE_KEYS = {"priority", "src", "table"}
_UNMODELLED_ROUTE_KEYS = {"nexthops", "nhid", "tos", "dsfield", "from", "encap"}
_NOT_WALKED = object()


def _destination(text, family):
    """(prefix length, network value) of a route's ``dst`` as ``ip -j`` prints it."""
    if text == "default":
        return 0, 0
    network = cidr_of(text)
    if network.family != family:
        raise ValueError(f"{text} is not {family}")
    return network.prefix, network.first


def _decision(route, family):
    """What ``ip route get`` answers when this route wins: {'dev': name}, None (no route), 'throw' or UNKNOWN."""
    kind = route.get("type", "unicast")
    table = route.get("table", "main")
    if set(route) & _UNMODELLED_ROUTE_KEYS or {"dead", "linkdown"} & set(route.get("flags") or []):
        return UNKNOWN
    if kind == "unicast" and route.get("dev"):
        return {"dev": route["dev"]}
    if kind in _LOCAL_TYPES and table == "local":
        return {"dev": "lo"}
    if kind in _NO_ROUTE_TYPES[family]:
        return None
    if kind == "throw":
        return "throw"
    return UNKNOWN


def table_order(rules):
    """Tables in the order the kernel consults them, or None when the rules are not the defaults."""
    order = []
    for rule in sorted(rules, key=lambda entry: entry.get("priority", 0)):
        if set(rule) - _RULE_KEYS or rule.get("src") != "all":
            return None
        if (rule.get("priority"), rule.get("table")) not in DEFAULT_RULES:
            return None
        order.append(rule["table"])
    return order


def build_tables(routes, family):
    """{table: ((prefix length, {network value: decision}) per prefix length, longest first)}."""
    candidates = {}
    for route in routes:
        try:
            key = _destination(route.get("dst", ""), family)
        except ValueError:
            continue
        table = route.get("table", "main")
        candidates.setdefault(table, {}).setdefault(key, []).append(route)
    tables = {}
    for table, by_destination in candidates.items():
        by_length = {}
        for (length, network), entries in by_destination.items():
            lowest = min(entry.get("metric", 0) for entry in entries)
            winners = [_decision(entry, family) for entry in entries if entry.get("metric", 0) == lowest]
            decision = winners[0] if all(winner == winners[0] for winner in winners) else UNKNOWN
            by_length.setdefault(length, {})[network] = decision
        tables[table] = tuple((length, by_length[length]) for length in sorted(by_length, reverse=True))
    return tables


class RouteLookup:
    """``lookup(address)`` answers as ``ip route get`` would, or ``UNKNOWN``."""

    def __init__(self, rules, routes, family):
        self.family = family
        self.order = table_order(rules)
        tables = build_tables(routes, family) if self.order is not None else {}
        bits = BITS[family]
        # Per table in the kernel's order: the shift that keeps a prefix length's network bits, and that
        # length's {network: decision}.
        self._walk = tuple(tuple((bits - length, networks) for length, networks in tables[table])
                           for table in self.order or () if table in tables)
        # Every route's prefix starts and ends on one of these boundaries, so from one boundary to the next
        # every address gets the same answer: a run's 10,000 lookups are one bisection each, and the walk
        # runs once per stretch that a lookup falls into (a full routing table is not walked whole).
        boundaries = {0}
        for table in self._walk:
            for shift, networks in table:
                for network in networks:
                    boundaries.update((network, network + (1 << shift)))
        boundaries.discard(1 << bits)  # the end of the address space starts nothing
        self._starts = sorted(boundaries)
        self._answers = [_NOT_WALKED] * len(self._starts)

    def lookup(self, address):
        return self.lookup_value(address_value(address)[1])

    def lookup_value(self, value):
        """``lookup`` of an address given as its integer value."""
        if self.order is None:
            return UNKNOWN
        index = bisect.bisect_right(self._starts, value) - 1
        answer = self._answers[index]
        if answer is _NOT_WALKED:
            answer = self._answers[index] = self._walked(self._starts[index])
        return answer

    def _walked(self, value):
        """The kernel's walk for one address: tables in order, longest prefix first, ``throw`` to the next."""
        for table in self._walk:
            for shift, networks in table:
                decision = networks.get(value >> shift << shift, False)
                if decision is False:
                    continue
                if decision == "throw":
                    break
                return decision
        return None


def default_route_device(routes, family):
    """The device of the default route of one family, for the ranges ``0.0.0.0/0`` and ``::/0`` (an internet
    gateway): the lowest-metric ``default`` unicast route with one device in the ``main`` table, else in the
    ``default`` table. None when there is none or it is ambiguous (multipath, equal metrics on two devices):
    no probe address stands for "the internet" (``::/0`` probed ``::1``, then a multicast address)."""
    for table in ("main", "default"):
        candidates = [route for route in routes
                      if route.get("dst") == "default" and route.get("table", "main") == table
                      and route.get("type", "unicast") == "unicast"]
        if not candidates:
            continue
        lowest = min(route.get("metric", 0) for route in candidates)
        best = [route for route in candidates if route.get("metric", 0) == lowest]
        devices = {route.get("dev") for route in best}
        if len(devices) != 1 or None in devices or any(set(route) & _UNMODELLED_ROUTE_KEYS for route in best):
            return None
        return devices.pop()
    return None
