# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nftables side of egress NAT policies: render our table, and read it back (pure).

One table, ``inet netkit_egress_nat``. Set names are index based (``p0_src``) and policy names
only appear inside rule comments, so a policy name never becomes an nft identifier.

Source node (role ``source``):
  prerouting (filter, priority mangle): a new connection without our mark jumps to ``select``,
  where a connection from a policy's sources to its destinations gets the egress slot's mark in
  its conntrack mark, unless a policy earlier in name order already marked it (the first match
  wins, as in the gateway's terminal SNAT rules, so a node steers to the egress IP the gateway
  translates to); every original-direction packet looks its conntrack mark up in the verdict map
  ``steer`` and jumps to its slot's chain ``e<slot>``, which copies the mark into the packet mark
  that ``ip rule`` routes to the egress IP. Only a new connection walks the policies; every other
  packet costs two rules and one hash lookup whatever the number of policies and egress IPs.
  postrouting (nat, priority srcnat - 10): marked packets get an identity SNAT. Once one NAT chain
  has performed NAT for a connection, later ones (the node's own MASQUERADE) are skipped, so the
  workload address reaches the gateway.
Gateway node (role ``gateway``):
  postrouting (nat, priority srcnat - 10): a policy's sources to its destinations SNAT to the
  egress IP, before any other masquerade.
Nothing here accepts or drops: filter rules of others (network policy) still decide.
"""

from __future__ import annotations

from typing import NamedTuple

from ansible_collections.netkit.egress.plugins.module_utils import _net
from ansible_collections.netkit.egress.plugins.module_utils import _nft_table
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy.model import (
    Policy, address_sort_key, canonical_cidrs)

TABLE_FAMILY = "inet"
TABLE_NAME = "netkit_egress_nat"
TABLE = f"{TABLE_FAMILY} {TABLE_NAME}"
SET_SUFFIXES = {"sources": "src", "destinations": "dst", "excluded_destinations": "exc"}
NAT_PRIORITY = 90  # srcnat - 10: before iptables/nft masquerade at srcnat (100)
MANGLE_PRIORITY = -150
CHAIN_SPECS = {
    "source": {"prerouting": ("filter", "prerouting", MANGLE_PRIORITY),
               "postrouting": ("nat", "postrouting", NAT_PRIORITY)},
    "gateway": {"postrouting": ("nat", "postrouting", NAT_PRIORITY)},
}
CHAIN_PRIORITY_TEXT = {MANGLE_PRIORITY: "mangle", NAT_PRIORITY: "srcnat - 10"}
SELECT_CHAIN = "select"
STEER_MAP = "steer"
SELECT_COMMENT = "select new connections"
STEER_COMMENT = "steer by egress mark"


def nft_family(family):
    return "ip6" if family == "ipv6" else "ip"


def set_name(index, list_field):
    return f"p{index}_{SET_SUFFIXES[list_field]}"


def policy_comment(policy):
    return f"policy {policy.name}"


def egress_comment(egress_ip):
    return f"egress {egress_ip}"


def slot_chain(slot):
    return f"e{slot}"


# ---- render ---------------------------------------------------------------------------------
def render_set(index, policy, list_field):
    networks = getattr(policy, list_field)
    address_type = "ipv6_addr" if policy.family == "ipv6" else "ipv4_addr"
    elements = f" elements = {{ {', '.join(networks)} }};" if networks else ""
    return (f"  set {set_name(index, list_field)} {{ type {address_type}; flags interval; auto-merge;"
            f"{elements} }}")


def match_policy(index, policy):
    ip = nft_family(policy.family)
    text = f"{ip} saddr @{set_name(index, 'sources')} {ip} daddr @{set_name(index, 'destinations')}"
    if policy.excluded_destinations:
        text += f" {ip} daddr != @{set_name(index, 'excluded_destinations')}"
    return text


def mark_set_expression(key, mark, mask):
    keep = ~mask & 0xFFFFFFFF
    return f"{key} set {key} & {keep:#010x} | {mark:#010x}"


def unmarked_guard(mask):
    """Only a connection no earlier policy marked: without it the LAST matching policy's mark would
    stand on the node while the gateway's FIRST matching SNAT rule translates (a reply without state)."""
    return f"ct mark & {mask:#010x} == 0x00000000"


def source_rules(policies, slots, numbering):
    """Rules per chain: the base chains, ``select`` and one ``e<slot>`` chain per egress IP."""
    mask = numbering.mark_mask
    chains = {"prerouting": [
        f"ct state new ct direction original {unmarked_guard(mask)} jump {SELECT_CHAIN} "
        f"comment \"{SELECT_COMMENT}\"",
        f"ct direction original ct mark & {mask:#010x} vmap @{STEER_MAP} comment \"{STEER_COMMENT}\""],
        SELECT_CHAIN: [], "postrouting": []}
    for index, policy in enumerate(policies):
        mark = numbering.mark(slots[policy.egress_ip])
        chains[SELECT_CHAIN].append(f"{unmarked_guard(mask)} {match_policy(index, policy)} "
                                    f"{mark_set_expression('ct mark', mark, mask)} "
                                    f"comment \"{policy_comment(policy)}\"")
    for egress_ip in sorted(slots, key=address_sort_key):
        mark = numbering.mark(slots[egress_ip])
        ip = nft_family(_net.family_of(egress_ip))
        chains[slot_chain(slots[egress_ip])] = [f"{mark_set_expression('meta mark', mark, mask)} "
                                                f"comment \"{egress_comment(egress_ip)}\""]
        chains["postrouting"].append(f"meta mark & {mask:#010x} == {mark:#010x} snat {ip} to {ip} saddr "
                                     f"comment \"{egress_comment(egress_ip)}\"")
    return chains


def render_steer_map(slots, numbering):
    elements = ", ".join(f"{numbering.mark(slot):#010x} : jump {slot_chain(slot)}"
                         for slot in sorted(slots.values()))
    return f"  map {STEER_MAP} {{ type mark : verdict; elements = {{ {elements} }}; }}"


def gateway_rules(policies):
    postrouting = []
    for index, policy in enumerate(policies):
        ip = nft_family(policy.family)
        interface = f" oifname \"{policy.interface}\"" if policy.interface else ""
        postrouting.append(f"{match_policy(index, policy)}{interface} snat {ip} to {policy.egress_ip} "
                           f"comment \"{policy_comment(policy)}\"")
    return {"postrouting": postrouting}


def render_table(role, policies, slots, numbering):
    """The table body, or None when there is nothing to hold (then the table must not exist)."""
    if not policies:
        return None
    lines = [f"table {TABLE} {{"]
    for index, policy in enumerate(policies):
        for list_field in SET_SUFFIXES:
            if list_field != "excluded_destinations" or policy.excluded_destinations:
                lines.append(render_set(index, policy, list_field))
    rules = source_rules(policies, slots, numbering) if role == "source" else gateway_rules(policies)
    # Regular chains and the map before the base chains: a jump or a map element names an existing chain.
    for chain, chain_rules in rules.items():
        if chain not in CHAIN_SPECS[role]:
            lines.append(f"  chain {chain} {{")
            lines.extend(f"    {rule}" for rule in chain_rules)
            lines.append("  }")
    if role == "source":
        lines.append(render_steer_map(slots, numbering))
    for chain, (chain_type, hook, priority) in CHAIN_SPECS[role].items():
        lines.append(f"  chain {chain} {{")
        lines.append(f"    type {chain_type} hook {hook} priority {CHAIN_PRIORITY_TEXT[priority]}; "
                     "policy accept;")
        lines.extend(f"    {rule}" for rule in rules[chain])
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_script(role, policies, slots, numbering):
    """One nft transaction that leaves exactly our table as wanted (or no table at all).

    ``table X {}`` first makes ``delete table X`` valid whether or not the table exists.
    """
    return _nft_table.restore_script(TABLE_FAMILY, TABLE_NAME, render_table(role, policies, slots, numbering))


# ---- read (``nft -j list table`` output; the only reader of it) -------------------------------
def element_networks(elements):
    """Canonical CIDR texts (merged, hosts bare) of a set's ``elem`` list; ValueError for a form we never
    write (the table is then rewritten, never misread)."""
    cidrs = []
    for element in elements or []:
        if isinstance(element, dict) and "elem" in element:
            element = element["elem"].get("val")
        if isinstance(element, str):
            cidrs.append(_net.parse_cidr(element, "set element", strict=True))
        elif isinstance(element, dict) and "prefix" in element:
            # The common form (10,000 of them in a big set): integers straight from the address.
            family, first = _net.address_value(element["prefix"]["addr"])
            length = element["prefix"]["len"]
            if not isinstance(length, int) or not 0 <= length <= _net.BITS[family] \
                    or first & ((1 << (_net.BITS[family] - length)) - 1):
                raise ValueError(f"unexpected set element {element!r}")
            cidrs.append(_net.Cidr(family, first, length))
        elif isinstance(element, dict) and "range" in element:
            (family, first), (last_family, last) = (_net.address_value(address) for address in element["range"])
            if family != last_family or first > last:
                raise ValueError(f"unexpected set element {element!r}")
            cidrs += [_net.Cidr(family, block, prefix)
                      for block, prefix in _net.cidrs_of_interval(first, last, _net.BITS[family])]
        else:
            raise ValueError(f"unexpected set element {element!r}")
    return canonical_cidrs(cidrs)


class RuleReading(NamedTuple):
    """What one of our rules says, read from its ``expr`` list in one pass.

    set_refs: ``{"saddr": "p0_src", "daddr": "p0_dst", "!daddr": "p0_exc"}``; mark: the mark the rule
    writes (``ct mark set ... | M``) or compares (``... & MASK == M``); snat: the SNAT address; oifname;
    unmarked_only: the rule matches only connections without our mark (``ct mark & MASK == 0``);
    masks: every mark mask the rule applies (a table written with another ``mark_mask`` is rewritten)."""
    set_refs: dict
    mark: int | None
    snat: str | None
    oifname: str | None
    unmarked_only: bool = False
    masks: frozenset = frozenset()


def mask_of(value):
    """The mask of ``X & MASK`` (as nft -j lists it), else None."""
    if isinstance(value, dict) and isinstance(value.get("&"), list) and len(value["&"]) == 2 \
            and isinstance(value["&"][1], int):
        return value["&"][1]
    return None


def read_rule(expressions):
    set_refs, mark, snat, oifname, unmarked_only, masks = {}, None, None, None, False, set()
    for expression in expressions:
        match = expression.get("match")
        if match:
            left, right = match.get("left"), match.get("right")
            if mask_of(left) is not None:
                masks.add(mask_of(left))
            if isinstance(right, str) and right.startswith("@"):
                payload = (left or {}).get("payload", {})
                set_refs[("!" if match.get("op") == "!=" else "") + payload.get("field", "?")] = right[1:]
            elif left == {"meta": {"key": "oifname"}}:
                oifname = oifname if oifname is not None else right
            elif isinstance(left, dict) and "&" in left and right == 0 and not isinstance(right, bool):
                unmarked_only = True  # every mark we write is non-zero: a zero compare is the guard
            elif isinstance(left, dict) and "&" in left and isinstance(right, int) and mark is None:
                mark = right
        mangle = expression.get("mangle")
        if mangle and isinstance(mangle.get("value"), dict) and "|" in mangle["value"] and mark is None:
            mark = mangle["value"]["|"][1]
            keep = mask_of(mangle["value"]["|"][0])
            # nft lists ``& ~MASK | M`` with M's bits kept (``& 0xf001ffff | 0x00010000``)
            masks.add(-1 if keep is None or not isinstance(mark, int) else (~keep & 0xFFFFFFFF) | mark)
        if "vmap" in expression and mask_of(expression["vmap"].get("key")) is not None:
            masks.add(mask_of(expression["vmap"]["key"]))
        if "snat" in expression and snat is None:
            snat = expression["snat"].get("addr")
    return RuleReading(set_refs, mark, snat, oifname, unmarked_only, frozenset(masks))


class HeldTable:
    """What our table on the host holds, read back into the model's terms."""

    def __init__(self):
        self.exists = False
        self.role = None
        self.policies = []  # source role: interface unknown here (it lives in the route)
        self.slots = {}  # egress IP -> slot
        self.layout = []  # (chain, comment) in order: compared with what we would render
        self.chains = {}  # base chains: name -> (type, hook, priority)
        self.regular_chains = set()
        self.steer = {}  # the source role's map: mark -> the chain it jumps to
        self.numbering = None  # what the marks were read with
        self.understood = True


def read_steer_map(entry):
    """mark -> chain of the ``steer`` verdict map (``None`` when it holds a form we never write)."""
    steer = {}
    for element in entry.get("elem") or []:
        if not (isinstance(element, list) and len(element) == 2 and isinstance(element[0], int)
                and isinstance(element[1], dict) and "jump" in element[1]):
            return None
        steer[element[0]] = element[1]["jump"].get("target")
    return steer


def parse_table(objects, numbering):
    """Read ``nft -j list table inet netkit_egress_nat`` output (None: no table)."""
    held = HeldTable()
    held.numbering = numbering
    if objects is None:
        return held
    held.exists = True
    sets, rules = {}, []
    for entry in objects:
        if "set" in entry:
            sets[entry["set"]["name"]] = entry["set"]
        elif "map" in entry:
            steer = read_steer_map(entry["map"]) if entry["map"].get("name") == STEER_MAP else None
            if steer is None:
                held.understood = False
            else:
                held.steer = steer
        elif "chain" in entry:
            chain = entry["chain"]
            if chain.get("hook") is None:
                held.regular_chains.add(chain["name"])
            else:
                held.chains[chain["name"]] = (chain.get("type"), chain.get("hook"), chain.get("prio"))
        elif "rule" in entry:
            rules.append(entry["rule"])
    held.role = "source" if "prerouting" in held.chains else "gateway"
    if held.chains != CHAIN_SPECS[held.role]:
        held.understood = False
    egress_by_slot = {}
    policy_rules = []
    for rule in rules:
        comment = rule.get("comment", "")
        held.layout.append((rule["chain"], comment))
        reading = read_rule(rule.get("expr", []))
        if reading.masks - {numbering.mark_mask}:
            held.understood = False
        if comment.startswith("egress "):
            slot = numbering.slot_of_mark(reading.mark) if reading.mark is not None else None
            if slot is None or rule["chain"] not in ("postrouting", slot_chain(slot)):
                held.understood = False
                continue
            egress_by_slot[slot] = comment.split(" ", 1)[1]
        elif comment.startswith("policy "):
            policy_rules.append((comment.split(" ", 1)[1], reading))
        elif comment not in (SELECT_COMMENT, STEER_COMMENT):
            held.understood = False
    held.slots = {egress: slot for slot, egress in egress_by_slot.items()}
    for name, reading in policy_rules:
        policy = policy_from_rule(name, reading, sets, egress_by_slot, numbering, held.role)
        if policy is None:
            held.understood = False
        else:
            held.policies.append(policy)
    held.policies.sort(key=lambda policy: policy.name)
    return held


def policy_from_rule(name, reading, sets, egress_by_slot, numbering, role):
    refs = reading.set_refs
    try:
        lists = {
            "sources": element_networks(sets[refs["saddr"]].get("elem")),
            "destinations": element_networks(sets[refs["daddr"]].get("elem")),
            "excluded_destinations": element_networks(sets[refs["!daddr"]].get("elem"))
            if "!daddr" in refs else (),
        }
    except (KeyError, ValueError):
        return None
    if role == "source":
        if not reading.unmarked_only:
            return None  # a rule of an older release (last match won): rewritten, never taken as ours
        slot = numbering.slot_of_mark(reading.mark) if reading.mark is not None else None
        egress_ip = egress_by_slot.get(slot)
        interface = None
    else:
        egress_ip, interface = reading.snat, reading.oifname
    if not isinstance(egress_ip, str):
        return None
    return Policy(name=name, egress_ip=egress_ip, interface=interface, **lists)


def expected_layout(role, policies, slots):
    """(chain, comment) of every rule we would render, in order."""
    if role == "gateway":
        return [("postrouting", policy_comment(policy)) for policy in policies]
    ordered = sorted(slots, key=address_sort_key)
    return ([("prerouting", SELECT_COMMENT), ("prerouting", STEER_COMMENT)]
            + [(SELECT_CHAIN, policy_comment(policy)) for policy in policies]
            + [(slot_chain(slots[egress]), egress_comment(egress)) for egress in ordered]
            + [("postrouting", egress_comment(egress)) for egress in ordered])


def table_matches(held, role, policies, slots):
    """Whether the host's table already is what we would render (nothing to apply)."""
    if not policies:
        return not held.exists
    if not held.exists or not held.understood or held.role != role:
        return False
    if held.chains != CHAIN_SPECS[role]:
        return False
    # The order of the rules in a chain is their precedence (the first match wins): compared per chain.
    expected = expected_layout(role, policies, slots)
    chains = {chain for chain, _comment in expected} | {chain for chain, _comment in held.layout} \
        | set(CHAIN_SPECS[role]) | held.regular_chains
    for chain in chains:
        if [entry for entry in held.layout if entry[0] == chain] != [entry for entry in expected if entry[0] == chain]:
            return False
    if role == "source":
        if held.slots != slots or held.regular_chains != {SELECT_CHAIN} | {slot_chain(slot) for slot in slots.values()}:
            return False
        if held.steer != {held.numbering.mark(slot): slot_chain(slot) for slot in slots.values()}:
            return False
    elif held.regular_chains or held.steer:
        return False
    comparable = [policy if role == "gateway" else strip_interface(policy) for policy in policies]
    return held.policies == comparable


def strip_interface(policy):
    return Policy(name=policy.name, egress_ip=policy.egress_ip, sources=policy.sources,
                  destinations=policy.destinations,
                  excluded_destinations=policy.excluded_destinations, interface=None)
