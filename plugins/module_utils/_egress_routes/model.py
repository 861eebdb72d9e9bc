# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routes owned by netkit.egress: validation, canonical form, desired-versus-current plan, commands.

Pure functions only (no commands, no files). A route is ours when it carries our routing protocol
number; its identity in a table is (destination, metric), as for the kernel's ``ip route replace``.
Destinations and next hops are ``_net``'s canonical texts (``10.1.1.1/32``, ``fd00:100::1``).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from ansible_collections.netkit.egress.plugins.module_utils import _net as net
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError

DEFAULT_PROTOCOL = 201
# The kernel's own protocol numbers (unspec, redirect, kernel, boot, static): never ours.
RESERVED_PROTOCOLS = range(0, 5)
# 255 is the kernel's local table; 0 is "unspecified".
RESERVED_TABLES = {0, 255}
STATES = ("present", "absent", "exact", "gathered")
# A next hop there is only reachable through a named device (the kernel cannot pick one).
LINK_LOCAL = (net.cidr_of("169.254.0.0/16"), net.cidr_of("fe80::/10"))


class Route(NamedTuple):
    destination: str
    via: Optional[str]
    dev: Optional[str]
    metric: int

    @property
    def family(self):
        return net.family_of(self.destination)

    @property
    def key(self):
        return (self.destination, self.metric)

    def as_dict(self):
        return {"destination": self.destination, "via": self.via, "dev": self.dev, "metric": self.metric}


# ---- validation ---------------------------------------------------------------------------
def validate_table(table):
    text = str(table).strip()
    if text == "main":
        return "main"
    if not text.isdigit() or int(text) in RESERVED_TABLES or int(text) > 0xFFFFFFFF:
        raise InputError("table", table, "is not 'main' or a route table number (1-4294967295, not 255)")
    return "main" if int(text) == 254 else str(int(text))


def validate_protocol(protocol):
    if not isinstance(protocol, int) or isinstance(protocol, bool) or not 0 <= protocol <= 255:
        raise InputError("protocol", protocol, "is not a routing protocol number (5-255)")
    if protocol in RESERVED_PROTOCOLS:
        raise InputError("protocol", problem=f"{protocol} belongs to the kernel (0-4: unspec, redirect, kernel, "
                                             "boot, static); choose 5-255")
    return protocol


def validate_metric(value, field):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        raise InputError(field, value, "is not a metric (0-4294967295)")
    return value


def canonical_destination(value, field):
    return net.normalise_cidr(value, field, strip=True)


def canonical_via(value, family, field):
    try:
        address = net.parse_address(value, field)
    except InputError:
        raise InputError(field, value, "is not an IP address") from None
    if net.family_of(address) != family:
        raise InputError(field, value, f"is not an {family.replace('ip', 'IP')} address like the destination")
    return address


def is_link_local(address):
    return any(net.cidr_of(address) in block for block in LINK_LOCAL)


def validate_dev(value, field):
    if value is None or value == "":
        return None
    return net.validate_interface(str(value), field)


def validate_route(entry, index, default_metric, require_next_hop=True):
    where = f"routes[{index}]"
    if not isinstance(entry, dict):
        raise InputError(where, problem=f"expected a dict with destination, via, dev, metric; got {entry!r}")
    unknown = sorted(set(entry) - {"destination", "via", "dev", "metric"})
    if unknown:
        raise InputError(where, problem=f"unknown key(s) {', '.join(unknown)}")
    if not entry.get("destination"):
        raise InputError(f"{where}.destination", problem="is required")
    destination = canonical_destination(entry["destination"], f"{where}.destination")
    family = net.family_of(destination)
    dev = validate_dev(entry.get("dev"), f"{where}.dev")
    via = entry.get("via")
    via = canonical_via(via, family, f"{where}.via") if via not in (None, "") else None
    if via is None and dev is None and require_next_hop:
        raise InputError(where, problem="needs via, dev or both")
    if via and dev is None and is_link_local(via):
        raise InputError(f"{where}.dev", problem=f"is required with the link-local via {via}")
    metric = entry.get("metric")
    metric = default_metric if metric is None else validate_metric(metric, f"{where}.metric")
    if family == "ipv6" and metric == 0:
        # The kernel stores an IPv6 route with metric 0 as 1024; asking for 0 would never converge.
        metric = 1024
    return Route(destination, via, dev, metric)


def validate_routes(entries, default_metric=100, require_next_hop=True):
    """Validated, canonical Route list; two different routes with one (destination, metric) are an error.

    Routes to remove are matched by destination and metric only, so they need no via or dev."""
    validate_metric(default_metric, "metric")
    routes = []
    seen = {}
    for index, entry in enumerate(entries or []):
        route = validate_route(entry, index, default_metric, require_next_hop)
        if route.key in seen and route == routes[seen[route.key]]:
            continue  # the same route listed twice (e.g. two spellings of one range) is one route
        if route.key in seen:
            raise InputError(f"routes[{index}]", problem=f"{route.destination} metric {route.metric} is already "
                                                         f"routes[{seen[route.key]}] (a table holds one route per "
                                                         "destination and metric)")
        seen[route.key] = index
        routes.append(route)
    return routes


# ---- the kernel's view ----------------------------------------------------------------------
def kernel_route(entry, family):
    """A Route from one entry of ``ip -N -j route show``, or None for non-unicast entries."""
    if entry.get("type", "unicast") != "unicast" or "nexthops" in entry:
        return None
    dst = entry.get("dst")
    if dst == "default":
        dst = "::/0" if family == "ipv6" else "0.0.0.0/0"
    destination = net.cidr_of(dst).text
    via = entry.get("gateway")
    # The kernel stores IPv4 routes without a metric as 0 and IPv6 ones as 1024; JSON omits a 0.
    return Route(destination, net.parse_address(via, "gateway") if via else None, entry.get("dev"),
                 int(entry.get("metric", 0)))


def split_kernel_routes(entries, family, protocol):
    """(ours, foreign) Routes of one table dump made with ``ip -N`` (numeric protocols).

    iproute2 omits the protocol of boot routes, so a missing protocol is never ours."""
    ours, foreign = [], []
    for entry in entries:
        route = kernel_route(entry, family)
        if route is None:
            continue
        (ours if entry.get("protocol") == str(protocol) else foreign).append(route)
    return ours, foreign


# ---- planning -------------------------------------------------------------------------------
class Plan(NamedTuple):
    add: list      # routes to create or replace (desired form)
    remove: list   # our routes to delete (kernel form)
    after: list    # our routes once applied


def sort_routes(routes):
    return sorted(routes, key=lambda route: (net.cidr_of(route.destination), route.metric))


def matches(desired, current):
    """Does the kernel's route satisfy the desired one? An unset dev lets the kernel choose."""
    return (desired.via == current.via and desired.metric == current.metric
            and (desired.dev is None or desired.dev == current.dev))


def check_foreign_conflicts(desired, foreign):
    foreign_by_key = {route.key: route for route in foreign}
    for index, route in enumerate(desired):
        other = foreign_by_key.get(route.key)
        if other is not None:
            raise InputError(
                f"routes[{index}]", problem=f"a route to {route.destination} with metric {route.metric} already "
                "exists and was not created by this module (another protocol); it is left alone: choose another "
                "metric or remove that route yourself")


def plan_routes(desired, ours, foreign, state):
    """What to add and remove so that our routes match ``desired`` under ``state``."""
    if state not in STATES:
        raise InputError("state", state, f"is not one of {', '.join(STATES)}")
    ours_by_key = {route.key: route for route in ours}
    if state == "gathered":
        return Plan([], [], sort_routes(ours))
    if state == "absent":
        wanted_gone = {route.key for route in desired}
        remove = [route for route in ours if route.key in wanted_gone]
        return Plan([], sort_routes(remove), sort_routes([r for r in ours if r.key not in wanted_gone]))
    check_foreign_conflicts(desired, foreign)
    add = []
    remove = []
    after = {}
    for route in desired:
        current = ours_by_key.get(route.key)
        if current is not None and matches(route, current):
            after[route.key] = current
            continue
        add.append(route)
        if current is not None:
            remove.append(current)
        after[route.key] = route
    desired_keys = {route.key for route in desired}
    for route in ours:
        if route.key in desired_keys:
            continue
        if state == "exact":
            remove.append(route)
        else:
            after[route.key] = route
    return Plan(sort_routes(add), sort_routes(remove), sort_routes(after.values()))


# ---- commands -------------------------------------------------------------------------------
def route_spec(route, table, protocol):
    words = [route.destination]
    if route.via:
        words += ["via", route.via]
    if route.dev:
        words += ["dev", route.dev]
    words += ["metric", str(route.metric), "table", table, "proto", str(protocol)]
    return words


def render_commands(plan, table, protocol):
    """``ip -batch`` lines. Deletions name our protocol, so the kernel never deletes another's route.

    A replaced route (same destination and metric) needs no deletion: ``replace`` swaps it in place."""
    added_keys = {route.key for route in plan.add}
    lines = [" ".join(["route", "del"] + route_spec(route, table, protocol))
             for route in plan.remove if route.key not in added_keys]
    lines += [" ".join(["route", "replace"] + route_spec(route, table, protocol)) for route in plan.add]
    return lines


def render_undo(plan, ours, table, protocol):
    """``ip -force -batch`` lines that put our routes back as they were (``ours``) after the batch of
    ``render_commands`` stopped half way: a route it added goes, one it replaced or deleted comes back."""
    ours_by_key = {route.key: route for route in ours}
    lines = []
    for route in plan.add:
        previous = ours_by_key.get(route.key)
        if previous is None:
            lines.append(" ".join(["route", "del"] + route_spec(route, table, protocol)))
    touched = [ours_by_key[route.key] for route in plan.add + plan.remove if route.key in ours_by_key]
    lines += [" ".join(["route", "replace"] + route_spec(previous, table, protocol))
              for previous in sort_routes(touched)]
    return list(dict.fromkeys(lines))


def routes_as_dicts(routes):
    return [route.as_dict() for route in routes]
