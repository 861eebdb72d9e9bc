# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Policy routing, return routes and sysctls of egress NAT policies (pure: no host access).

Source node, per egress IP (a "slot"): ``ip rule fwmark MARK/MASK lookup TABLE priority PRIO`` and
in TABLE ``default via EGRESS_IP dev IFACE proto PROTO``; the slot rules are the leaves of a binary
tree of ``goto`` rules over the mark, behind one rule that sends unmarked packets past them all. The next hop is the floating IP itself,
so traffic follows the address when it moves to another gateway node (after its gratuitous ARP).
Gateway node: ``return_routes`` in the main table with ``proto PROTO``: the de-NATed replies
need a way back to the workload addresses.

What we own: rules at priorities ``rule_priority_base .. + priority_span`` (source and gateway alike),
``proto PROTO`` routes in tables ``route_table_base .. +slots`` and, on a gateway,
``proto PROTO`` routes of the main table.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from ansible_collections.netkit.egress.plugins.module_utils import _net
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy.model import address_sort_key, bare_host

FAMILIES = _net.FAMILIES


@dataclass(frozen=True)
class RuleSpec:
    """One ``ip rule``: ``fwmark`` (None: matches every packet), then ``lookup table``, ``goto`` a priority
    or neither (``nop``). -1 stands for a value that could not be read (never equal to one we want)."""
    family: str
    priority: int
    fwmark: int | None
    fwmask: int | None
    table: int | None = None
    goto: int | None = None

    def words(self):
        text = f"priority {self.priority}"
        if self.fwmark is not None:
            text += f" fwmark {self.fwmark:#x}/{self.fwmask:#x}"
        if self.table is not None:
            return f"{text} lookup {self.table}"
        return f"{text} goto {self.goto}" if self.goto is not None else f"{text} nop"

    @property
    def readable(self):
        return -1 not in (self.fwmark, self.fwmask, self.table, self.goto)


@dataclass(frozen=True)
class RouteSpec:
    family: str
    table: str  # "main" or a number as text
    destination: str  # canonical network text or "default"
    via: str
    dev: str | None

    def words(self, protocol=None):
        text = f"{self.destination} via {self.via}"
        if self.dev:
            text += f" dev {self.dev}"
        text += f" table {self.table}"
        if protocol is not None:
            text += f" proto {protocol}"
        return text


# ---- desired --------------------------------------------------------------------------------
def desired_rules(slots, numbering):
    """Per family with egress IPs: one rule sending unmarked packets past ours, then the slot rules as the
    leaves of a binary tree over the mark's value (``model.Numbering``'s layout): a node's rule jumps
    (``goto``) to its right subtree when its bit is set, else the walk falls into its left subtree right
    after it. A marked packet passes about two rules per bit of the mask (the default: 12 bits), not one
    rule per egress IP; the node's unmarked traffic passes two."""
    mask, shift, end = numbering.mark_mask, numbering.mark_shift, numbering.end_priority
    rules = []
    for family in FAMILIES:
        by_field = {numbering.field(slot): slot for egress, slot in slots.items() if _net.family_of(egress) == family}
        if not by_field:
            continue
        fields = sorted(by_field)
        rules.append(RuleSpec(family, numbering.rule_priority_base, 0, mask, goto=end))

        def has_slot(first, count):
            index = bisect.bisect_left(fields, first)
            return index < len(fields) and fields[index] < first + count

        def visit(priority, depth, prefix, targeted):
            """The subtree of the fields ``prefix .. prefix + 2**depth - 1`` at ``priority``; ``targeted``: a
            goto jumps here, so this priority must hold a rule (a goto needs its exact target)."""
            if not has_slot(prefix, 1 << depth):
                return  # no slot in this subtree: no rule
            if depth == 0:
                rules.append(RuleSpec(family, priority, prefix << shift, mask, numbering.table(by_field[prefix])))
                return
            half = 1 << (depth - 1)
            right = priority + (1 << depth)  # after this node and its left subtree of 2**depth - 1 priorities
            # Only where both halves hold slots does a test pay: otherwise the walk reaches the one that does.
            split = has_slot(prefix, half) and has_slot(prefix | half, half)
            if split:
                rules.append(RuleSpec(family, priority, (prefix | half) << shift, mask & ~((half << shift) - 1),
                                      goto=right))
            elif targeted:
                rules.append(RuleSpec(family, priority, None, None))
            visit(priority + 1, depth - 1, prefix, False)
            visit(right, depth - 1, prefix | half, split)

        visit(numbering.tree_priority, numbering.tree_depth, 0, False)
        rules.append(RuleSpec(family, end, None, None))
    return sorted(rules, key=lambda rule: (rule.family, rule.priority))


def desired_slot_routes(slots, interfaces, numbering):
    """``interfaces``: egress IP -> device towards it (None when unknown, as in ``rendered``)."""
    return sorted(
        (RouteSpec(_net.family_of(egress), str(numbering.table(slot)), "default", egress,
                   interfaces.get(egress)) for egress, slot in slots.items()),
        key=route_sort_key)


def desired_return_routes(return_routes):
    return sorted((RouteSpec(route.family, "main", destination_text(route.destination), route.via, None)
                   for route in return_routes), key=route_sort_key)


def destination_text(destination):
    if destination in ("default", "0.0.0.0/0", "::/0"):
        return "default"
    return bare_host(_net.cidr_of(destination).text)


def route_sort_key(route):
    return (route.family, route.table, route.destination, address_sort_key(route.via))


# ---- held (parse ``ip -j`` output) ----------------------------------------------------------
def owned_rules(rules_json, family, numbering):
    """Rules at our priorities (whatever they say: a stray one there is ours to remove)."""
    first = numbering.rule_priority_base
    last = first + numbering.priority_span
    held = []
    for rule in rules_json:
        priority = rule.get("priority")
        if priority is None or not first <= priority < last:
            continue
        fwmark = parse_hex(rule["fwmark"]) if "fwmark" in rule else None
        fwmask = parse_hex(rule.get("fwmask", "0xffffffff")) if fwmark is not None else None
        table = table_number(rule["table"]) if "table" in rule else None
        goto = rule.get("goto") if "goto" in rule else None
        if "unresolved" in rule or (goto is not None and not isinstance(goto, int)) \
                or set(rule) - {"priority", "src", "fwmark", "fwmask", "table", "goto", "nop", "unresolved"} \
                or rule.get("src", "all") != "all" or ("nop" in rule) != (table is None and goto is None):
            table = -1  # not a rule we write: never equal to a wanted one, so it is replaced
        held.append(RuleSpec(family, priority, fwmark, fwmask, table, goto))
    return held


def parse_hex(text):
    try:
        return int(str(text), 0)
    except ValueError:
        return -1


def table_number(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return -1


def owned_routes(routes_json, family, numbering, include_main):
    """``ip -j route show table all proto PROTO`` entries in our tables (and main, on a gateway)."""
    first = numbering.route_table_base
    last = first + numbering.slot_count
    held = []
    for route in routes_json:
        table = route.get("table", "main")
        if table == "main":
            if not include_main:
                continue
        elif not first <= table_number(table) < last:
            continue
        if "gateway" not in route:
            # Not a shape we write (multipath, blackhole...): keep it visible so it gets removed.
            held.append(RouteSpec(family, str(table), destination_text(route["dst"]), "", route.get("dev")))
            continue
        held.append(RouteSpec(family, str(table), destination_text(route["dst"]), route["gateway"],
                              route.get("dev")))
    return held


def slot_interfaces(held_routes, slots):
    """Egress IP -> device of its held default route (what ``gathered`` reports as interface)."""
    by_table = {route.table: route for route in held_routes if route.destination == "default"}
    interfaces = {}
    for route in by_table.values():
        if route.via in slots:
            interfaces[route.via] = route.dev
    return interfaces


# ---- diff -----------------------------------------------------------------------------------
def route_matches(held, wanted):
    return (held.family, held.table, held.destination, held.via) == \
        (wanted.family, wanted.table, wanted.destination, wanted.via) and \
        (wanted.dev is None or held.dev == wanted.dev)


def routing_changes(held_rules, wanted_rules, held_routes, wanted_routes, protocol):
    """``(adds, removals)``: ``ip`` command words per family, in the order to run them.

    Adds run before the nft change (marked packets find their route at once); removals after it.
    """
    adds = {family: [] for family in FAMILIES}
    removals = {family: [] for family in FAMILIES}
    for route in wanted_routes:
        if not any(route_matches(held, route) for held in held_routes):
            adds[route.family].append(f"route replace {route.words(protocol)}")
    for rule in wanted_rules:
        if rule not in held_rules:
            adds[rule.family].append(f"rule add {rule.words()}")
    for rule in held_rules:
        if rule not in wanted_rules:
            # By its words where they are known: a wanted rule just added at the same priority stays.
            removals[rule.family].append(f"rule del {rule.words()}" if rule.readable
                                         else f"rule del priority {rule.priority}")
    for route in held_routes:
        replaced = any(route_matches(route, wanted) or
                       (route.table, route.destination) == (wanted.table, wanted.destination)
                       for wanted in wanted_routes if wanted.family == route.family)
        if not replaced:
            removals[route.family].append(f"route del {route.destination} table {route.table}"
                                          f" proto {protocol}")
    return adds, removals


def routing_undo(held_rules, wanted_rules, held_routes, wanted_routes, protocol):
    """``(undo of the adds, undo of the removals)``: per-family ``ip -force -batch`` lines that put the
    held rules and routes back after the batches of ``routing_changes`` stopped half way (an undo line for
    a step that never ran fails harmlessly)."""
    undo_adds = {family: [] for family in FAMILIES}
    undo_removals = {family: [] for family in FAMILIES}
    for route in wanted_routes:
        if not any(route_matches(held, route) for held in held_routes) and not any(
                (held.family, held.table, held.destination) == (route.family, route.table, route.destination)
                for held in held_routes):
            undo_adds[route.family].append(f"route del {route.destination} table {route.table} proto {protocol}")
    for rule in wanted_rules:
        if rule not in held_rules:
            undo_adds[rule.family].append(f"rule del {rule.words()}")
    for rule in held_rules:
        if rule not in wanted_rules and rule.readable:
            undo_removals[rule.family].append(f"rule add {rule.words()}")
    for route in held_routes:
        if route.via and not any(route_matches(route, wanted) for wanted in wanted_routes):
            # A route of the same table and destination replaced it (an add); else a removal deleted it.
            replaced = any((route.table, route.destination) == (wanted.table, wanted.destination)
                           for wanted in wanted_routes if wanted.family == route.family)
            undo = undo_adds if replaced else undo_removals
            undo[route.family].append(f"route replace {route.words(protocol)}")
    return undo_adds, undo_removals


def command_lines(batches):
    """Per-family batches as the ``ip -4 ...`` lines a user would type."""
    flag = {"ipv4": "-4", "ipv6": "-6"}
    return [f"ip {flag[family]} {words}" for family in FAMILIES for words in batches.get(family, [])]


# ---- sysctls --------------------------------------------------------------------------------
def desired_sysctls(role, policies, current):
    """name -> value the path needs. ``current`` reads a sysctl (None when absent).

    Forwarding: both roles route other hosts' packets. rp_filter: on a source node the replies
    come back from the gateway on the interface towards it; when that is not the interface of
    the node's route back to the remote address, strict mode (1) drops them, so an interface in
    strict mode is made loose (2) -- the interface only, never ``all``, which would loosen every
    other interface too (the kernel uses the larger of ``all`` and the interface's value).
    """
    families = {policy.family for policy in policies}
    wanted = {}
    if "ipv4" in families:
        wanted["net.ipv4.ip_forward"] = "1"
    if "ipv6" in families:
        wanted["net.ipv6.conf.all.forwarding"] = "1"
    if role == "source":
        strict_all = current("net.ipv4.conf.all.rp_filter") == "1"
        for interface in sorted({policy.interface for policy in policies
                                 if policy.family == "ipv4" and policy.interface}):
            own = current(f"net.ipv4.conf.{interface}.rp_filter")
            if own == "1" or (strict_all and own in ("0", "1")):
                wanted[f"net.ipv4.conf.{interface}.rp_filter"] = "2"
            elif own == "2":
                wanted[f"net.ipv4.conf.{interface}.rp_filter"] = "2"
    return wanted
