# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables backend of the egress gateway (pure): render the table, read it back, compare canonically.

The table ``inet netkit_egress`` is ours alone. Desired and current state are both turned into the same
canonical text (sets with sorted elements; chains with their rules in ``nft list`` syntax, no handles, no
counters), so that messy input (``10.1.2.3/8``, overlaps, upper case IPv6) still compares equal to what the
kernel reports. ``NftablesBackend`` is this file behind the interface that ``run`` uses for both backends.

Addresses are matched with one plain hash set per prefix length (``ip daddr & 255.255.255.0
@netkit_p0_dst4_l24``), as ipset's ``hash:net`` does, not with one interval set: at 10,000 ranges the
interval set's tree walk cost about 15 % of the small-packet rate, a hash probe per prefix length present
costs what one range does (docs/performance.md). Each set ``..._l<N>`` holds the network addresses of the
merged ranges of length N; a path with several lengths gets one rule per length (per pair of lengths when
sources are matched too), all with the path's verdict. ``/0`` is stored as its two halves (a zero mask is
no lookup) and read back as one range.
"""

from __future__ import annotations

import functools
import json
import re

from ansible_collections.netkit.egress.plugins.module_utils import _nft_table
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.plan import gathered_params
from ansible_collections.netkit.egress.plugins.module_utils._net import (
    BITS, address_text, address_value, cidr_text, cidrs_of_interval, collapse, sorted_addresses)
from ansible_collections.netkit.egress.plugins.module_utils._transaction import Transaction

TABLE_FAMILY = "inet"
TABLE_NAME = "netkit_egress"
TABLE = f"{TABLE_FAMILY} {TABLE_NAME}"
SET_TYPES = {"ipv4": "ipv4_addr", "ipv6": "ipv6_addr"}
PROTOCOLS = {"ipv4": "ip", "ipv6": "ip6"}
FAMILY_OF_PROTOCOL = {"ip": "ipv4", "ip6": "ipv6"}
SUFFIX = {"ipv4": "4", "ipv6": "6"}
BASE_CHAINS = {
    # name: (type, hook, numeric priority, priority keyword as nft prints it)
    "forward": ("filter", "forward", 0, "filter"),
    "postrouting": ("nat", "postrouting", 100, "srcnat"),
}
NETWORK_COMMENT_PREFIX = "network "
PATH_VERDICTS = {("forward", "accept"), ("forward", "return"), ("postrouting", "masquerade")}


# ---- desired state --------------------------------------------------------------------------
def _set_name(kind, index, family):
    return f"netkit_p{index}_{kind}{SUFFIX[family]}"


def _union_set_name(family):
    return f"netkit_all{SUFFIX[family]}"


def _length_set_name(base, length):
    return f"{base}_l{length}"


LENGTH_SET = re.compile(r"_l(\d{1,3})$")


@functools.lru_cache(maxsize=64)
def by_length(family, cidrs):
    """Merged CIDR texts (a tuple: cached, a run asks for the same sets several times) -> {prefix length:
    network address texts}, longest first. ``/0`` becomes its two halves (a zero mask is no lookup); no
    ranges at all give one empty full-length set, so that the rule that names it (and with it the path, for
    ``gathered``) is still there, matching nothing as before."""
    groups = {}
    for cidr in cidrs:
        address, length = cidr.rsplit("/", 1)
        if length == "0":
            half = 1 << (BITS[family] - 1)
            groups.setdefault(1, []).extend([address_text(family, 0), address_text(family, half)])
        else:
            groups.setdefault(int(length), []).append(address)
    if not groups:
        groups[BITS[family]] = []
    return {length: tuple(groups[length]) for length in sorted(groups, reverse=True)}


def _mask_text(family, length):
    bits = BITS[family]
    return address_text(family, ((1 << length) - 1) << (bits - length))


def _lookup(family, field, base, length):
    """One match of an address against the set of one prefix length: ``ip daddr & MASK @SET``."""
    masked = "" if length == BITS[family] else f" & {_mask_text(family, length)}"
    return f"{PROTOCOLS[family]} {field}{masked} @{_length_set_name(base, length)}"


def _base_sets(plan):
    """set base name -> (family, merged CIDRs, what they are: the start of the sets' comment)."""
    merged = {}
    for family in plan.families:
        if plan.segmented:
            merged[_union_set_name(family)] = (family, plan.union[family], "ranges of all networks")
    for index, path in enumerate(plan.paths):
        what = f"ranges to {path.interface}" if path.network is None else f"ranges of network {path.network}"
        merged[_set_name("dst", index, path.family)] = (path.family, path.destinations, what)
        if path.network is not None:
            merged[_set_name("src", index, path.family)] = (path.family, path.sources,
                                                            f"sources of network {path.network}")
    return merged


def desired_sets(plan):
    """set name -> (family, tuple of network address texts), one set per prefix length."""
    return {_length_set_name(base, length): (family, addresses)
            for base, (family, cidrs, _what) in _base_sets(plan).items()
            for length, addresses in by_length(family, cidrs).items()}


def set_comments(plan):
    """set name -> its comment, which says in words what ``nft list`` shows only as a bare address: every
    element of ``..._l24`` is the network address of a /24 range (at most 117 characters; nft allows 128)."""
    return {_length_set_name(base, length): f"/{length} {what} (elements: network addresses)"
            for base, (family, cidrs, what) in _base_sets(plan).items() for length in by_length(family, cidrs)}


def _comment(path):
    return f' comment "{NETWORK_COMMENT_PREFIX}{path.network}"' if path.network else ""


def _address_matches(family, field_sets):
    """[(field, set base, cidrs)] -> one match text per combination of the sets' prefix lengths."""
    combinations = [""]
    for field, base, cidrs in field_sets:
        combinations = [f"{done} {_lookup(family, field, base, length)}".lstrip()
                        for done in combinations for length in by_length(family, cidrs)]
    return combinations


def _path_matches(plan, index, path):
    lead = f'iifname "{plan.network_interface}" oifname "{path.interface}"'
    field_sets = []
    if path.network is not None:
        field_sets.append(("saddr", _set_name("src", index, path.family), path.sources))
    field_sets.append(("daddr", _set_name("dst", index, path.family), path.destinations))
    return [f"{lead} {match}" for match in _address_matches(path.family, field_sets)]


def _reverse_matches(plan, index, path, with_iif):
    lead = (f'iifname "{path.interface}" ' if with_iif else "") + f'oifname "{plan.network_interface}"'
    field_sets = [("saddr", _set_name("dst", index, path.family), path.destinations),
                  ("daddr", _set_name("src", index, path.family), path.sources)]
    return [f"{lead} {match}" for match in _address_matches(path.family, field_sets)]


def has_forward_chain(plan):
    """Whether the table needs a forward base chain at all. An nftables ``accept`` in our table cannot
    override another table's drop and our chain's policy is accept: without segmentation the forward rules
    decide nothing and only cost every forwarded packet a hook. With ``nat`` the masquerade rules record the
    paths; without it the forward rules are their only record, and stay."""
    return plan.segmented or not plan.nat


def _forward_rules(plan):
    verdict = "accept" if plan.forward_accept else "return"
    nif = plan.network_interface
    forward = []
    if plan.paths and plan.forward_accept:
        forward.append(f'oifname "{nif}" ct state established,related accept')
    if plan.reverse_nat and plan.segmented and plan.paths:
        # Replies of connections that range hosts opened to members must pass the segmentation drop.
        forward.append(f'iifname "{nif}" ct state established,related {verdict}')
    for index, path in enumerate(plan.paths):
        forward += [f"{match} {verdict}{_comment(path)}" for match in _path_matches(plan, index, path)]
    if plan.reverse_nat and plan.forward_accept:
        for index, path in enumerate(plan.paths):
            if path.network is not None:
                forward += [f"{match} accept{_comment(path)}" for match in _reverse_matches(plan, index, path, True)]
    if plan.segmented:
        for family in plan.families:
            forward += [f'iifname "{nif}" {match} drop' for match in _address_matches(
                family, [("daddr", _union_set_name(family), plan.union[family])])]
    return forward


def _postrouting_rules(plan):
    postrouting = []
    if plan.nat:
        for index, path in enumerate(plan.paths):
            postrouting += [f"{match} masquerade{_comment(path)}" for match in _path_matches(plan, index, path)]
    if plan.reverse_nat:
        for index, path in enumerate(plan.paths):
            if path.network is not None:
                postrouting += [f"{match} masquerade{_comment(path)}"
                                for match in _reverse_matches(plan, index, path, False)]
    return postrouting


def desired_rules(plan):
    """chain name -> list of rules in ``nft list`` syntax (the same text the canonical reader produces);
    no ``forward`` chain where ``has_forward_chain`` says it would decide nothing."""
    chains = {"forward": _forward_rules(plan)} if has_forward_chain(plan) else {}
    chains["postrouting"] = _postrouting_rules(plan)
    return chains


def _elements_text(elements):
    return "{ " + ", ".join(elements) + " }"


def render_script(plan):
    """The whole table as one atomic ``nft -f`` transaction (create-if-missing, delete, recreate)."""
    lines = [f"table {TABLE} {{}}", f"delete table {TABLE}", f"table {TABLE} {{"]
    comments = set_comments(plan)
    for name, (family, elements) in desired_sets(plan).items():
        lines += [f"\tset {name} {{", f"\t\ttype {SET_TYPES[family]}", f'\t\tcomment "{comments[name]}"']
        if elements:
            lines.append(f"\t\telements = {_elements_text(elements)}")
        lines.append("\t}")
    for chain, rules in desired_rules(plan).items():
        chain_type, hook, _prio, prio_name = BASE_CHAINS[chain]
        lines += [f"\tchain {chain} {{",
                  f"\t\ttype {chain_type} hook {hook} priority {prio_name}; policy accept;"]
        lines += [f"\t\t{rule}" for rule in rules]
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_delete_script():
    return _nft_table.delete_script(TABLE_FAMILY, TABLE_NAME)


def desired_canonical(plan):
    # by_length keeps the merged ranges' order: ascending, the order sorted_addresses gives the kernel's.
    comments = set_comments(plan)
    sets = {name: (SET_TYPES[family], (), comments[name], _with_length(name, elements))
            for name, (family, elements) in desired_sets(plan).items()}
    chains = {name: (BASE_CHAINS[name][0], BASE_CHAINS[name][1], BASE_CHAINS[name][2], "accept", tuple(rules))
              for name, rules in desired_rules(plan).items()}
    return _canonical_text(sets, chains)


def _canonical_text(sets, chains):
    lines = [f"table {TABLE}"]
    for name in sorted(sets):
        set_type, flags, comment, elements = sets[name]
        flag_text = f" flags {','.join(flags)}" if flags else ""
        comment_text = f' comment "{comment}"' if comment is not None else ""
        lines.append(f"set {name} type {set_type}{flag_text}{comment_text} elements {_elements_text(elements)}")
    for name in sorted(chains):
        chain_type, hook, prio, policy, rules = chains[name]
        lines.append(f"chain {name} type {chain_type} hook {hook} priority {prio} policy {policy}")
        lines += [f"  {rule}" for rule in rules]
    return "\n".join(lines) + "\n"


# ---- current state (nft -j) -----------------------------------------------------------------
def _element_texts(element):
    """One JSON set element -> CIDR texts (a prefix, a single address or a range of addresses)."""
    if isinstance(element, dict) and "elem" in element:
        return _element_texts(element["elem"].get("val"))
    if isinstance(element, str):
        return [element]
    if isinstance(element, dict) and "prefix" in element:
        return [f"{element['prefix']['addr']}/{element['prefix']['len']}"]
    if isinstance(element, dict) and "range" in element:
        (family, low), (_family, high) = (address_value(value) for value in element["range"])
        return [cidr_text(family, first, prefix) for first, prefix in cidrs_of_interval(low, high, BITS[family])]
    raise ValueError(f"unexpected set element {element!r}")


def _with_length(name, addresses):
    """A per-length set's addresses written as CIDRs of that length, so that a diff shows the ranges (an
    address with host bits set stays as it is: ``10.0.0.5/24`` in ``_l24`` matches nothing, it is drift)."""
    length = LENGTH_SET.search(name)
    return tuple(f"{address}/{length.group(1)}" for address in addresses) if length else tuple(addresses)


def _canonical_elements(set_json):
    """A hash set's elements as sorted address texts with the set's length (kept as they are, see
    ``_with_length``); an interval set's as merged CIDRs."""
    texts = [text for element in set_json.get("elem", []) for text in _element_texts(element)]
    if "interval" in set_json.get("flags", ()):
        return collapse(texts) if texts else ()
    return _with_length(set_json.get("name", ""), sorted_addresses(texts))


def set_elements(set_json):
    """The CIDRs a set of ours holds (a hash set of one prefix length, or an interval set of older versions)."""
    texts = [text for element in set_json.get("elem", []) for text in _element_texts(element)]
    length = LENGTH_SET.search(set_json.get("name", ""))
    if length and "interval" not in set_json.get("flags", ()):
        texts = [f"{text}/{length.group(1)}" for text in texts]
    return collapse(texts) if texts else ()


def _left_text(left):
    if isinstance(left, dict) and "&" in left and isinstance(left["&"], list) and len(left["&"]) == 2:
        value, mask = left["&"]
        if isinstance(mask, str):
            try:
                mask = address_text(*address_value(mask))
            except ValueError:
                pass
        return f"{_left_text(value)} & {mask}"
    if isinstance(left, dict) and "meta" in left:
        return left["meta"]["key"]
    if isinstance(left, dict) and "payload" in left:
        return f"{left['payload']['protocol']} {left['payload']['field']}"
    if isinstance(left, dict) and "ct" in left:
        return f"ct {left['ct']['key']}"
    return json.dumps(left, sort_keys=True)


def _right_text(left, right):
    if isinstance(right, str):
        if isinstance(left, dict) and "meta" in left and left["meta"]["key"] in ("iifname", "oifname"):
            return f'"{right}"'
        return right
    if isinstance(right, dict) and "prefix" in right:
        return f"{right['prefix']['addr']}/{right['prefix']['len']}"
    if isinstance(right, list) and all(isinstance(item, str) for item in right):
        return ",".join(right)
    return json.dumps(right, sort_keys=True)


def _expr_text(expr):
    if "match" in expr:
        match = expr["match"]
        op = "" if match["op"] in ("==", "in") else f"{match['op']} "
        return f"{_left_text(match['left'])} {op}{_right_text(match['left'], match['right'])}"
    if len(expr) == 1:
        (key, value), = expr.items()
        if value is None:
            return key
    # Anything we never render: keep it verbatim so that it differs from the desired state.
    return json.dumps(expr, sort_keys=True)


def rule_text(rule_json):
    text = " ".join(_expr_text(expr) for expr in rule_json.get("expr", []))
    if rule_json.get("comment") is not None:
        text += f' comment "{rule_json["comment"]}"'
    return text


def _objects(table_json, kind):
    return [item[kind] for item in table_json or [] if kind in item]


def current_canonical(table_json):
    """Canonical text of the table as the kernel holds it, or None when the table does not exist."""
    if table_json is None:
        return None
    sets = {s["name"]: (s.get("type"), tuple(sorted(s.get("flags", []))), s.get("comment"), _canonical_elements(s))
            for s in _objects(table_json, "set")}
    chains = {}
    for chain in _objects(table_json, "chain"):
        rules = tuple(rule_text(rule) for rule in _objects(table_json, "rule") if rule["chain"] == chain["name"])
        chains[chain["name"]] = (chain.get("type"), chain.get("hook"), chain.get("prio"), chain.get("policy"),
                                 rules)
    return _canonical_text(sets, chains)


# ---- gathered (round trip back to module parameters) ---------------------------------------
def _rule_terms(rule_json):
    """[(left text, right value)] for matches, plus ('verdict', name)."""
    terms = []
    for expr in rule_json.get("expr", []):
        if "match" in expr:
            left = expr["match"]["left"]
            if isinstance(left, dict) and isinstance(left.get("&"), list) and left["&"]:
                left = left["&"][0]  # the per-length mask: the address field itself is the key
            terms.append((_left_text(left), expr["match"]["right"]))
        elif len(expr) == 1 and next(iter(expr.values())) is None:
            terms.append(("verdict", next(iter(expr))))
    return dict(terms)


def _address_terms(terms, field):
    for proto, family in FAMILY_OF_PROTOCOL.items():
        value = terms.get(f"{proto} {field}")
        if isinstance(value, str) and value.startswith("@"):
            return family, value[1:]
    return None, None


def gather(table_json):
    """Our table -> module parameters that would recreate it (plus the outbound interface per range).
    Without a forward chain (no networks, nat on) ``forward_accept`` changes nothing and is reported as its
    default, true."""
    if table_json is None:
        return None
    sets = {s["name"]: set_elements(s) for s in _objects(table_json, "set")}
    rules = _objects(table_json, "rule")
    network_interface, forward_accept, nat, reverse_nat = None, True, False, False
    networks, plain_ranges, interfaces, union = {}, {}, {}, {}
    for rule in rules:
        terms = _rule_terms(rule)
        family, dst_set = _address_terms(terms, "daddr")
        _src_family, src_set = _address_terms(terms, "saddr")
        comment = rule.get("comment") or ""
        network = comment[len(NETWORK_COMMENT_PREFIX):] if comment.startswith(NETWORK_COMMENT_PREFIX) else None
        verdict = terms.get("verdict")
        if rule["chain"] == "forward" and dst_set and dst_set.startswith("netkit_all"):
            network_interface = terms.get("iifname", network_interface)
            union.update(dict.fromkeys(sets.get(dst_set, ())))
        elif dst_set and "_dst" in dst_set and "iifname" in terms and (
                (rule["chain"], verdict) in PATH_VERDICTS):
            # A path's forward rule, or its masquerade rule (the only record without a forward chain).
            network_interface = terms["iifname"]
            if rule["chain"] == "forward":
                forward_accept = verdict == "accept"
            else:
                nat = True
            for cidr in sets.get(dst_set, ()):
                interfaces[cidr] = terms.get("oifname")
            if network is None:
                plain_ranges.update(dict.fromkeys(sets.get(dst_set, ())))
            else:
                entry = networks.setdefault(network, {"name": network, "cidr": {}, "ranges": {}})
                entry["cidr"].update(dict.fromkeys(sets.get(src_set, ())))
                entry["ranges"].update(dict.fromkeys(sets.get(dst_set, ())))
        elif rule["chain"] == "postrouting" and verdict == "masquerade" and "iifname" not in terms:
            reverse_nat = True
    # One range is one set element per prefix length, and /0 two halves: merge back what belongs together.
    networks = {name: {"name": name, "cidr": _merged(entry["cidr"]), "ranges": _merged(entry["ranges"])}
                for name, entry in networks.items()}
    return gathered_params("nftables", _merged(plain_ranges), _merged(union), networks, interfaces, nat=nat,
                           network_interface=network_interface, reverse_nat=reverse_nat,
                           forward_accept=forward_accept)


def _merged(cidrs):
    """Collapsed CIDRs of both families, IPv4 first, as a list."""
    merged = []
    for family in ("ipv4", "ipv6"):
        texts = [cidr for cidr in cidrs if (":" in cidr) == (family == "ipv6")]
        merged += collapse(texts) if texts else []
    return merged


# ---- the backend interface ------------------------------------------------------------------
class NftablesBackend:
    """Our nftables table, from the host state ``run.read_firewall`` read once."""
    name = "nftables"
    variant = None

    def __init__(self, firewall, variant=None):
        self.table_json = firewall["nft_table"]

    def current(self):
        """{label: canonical text} of what we own now."""
        canonical = current_canonical(self.table_json)
        return {} if canonical is None else {"nftables": canonical}

    @staticmethod
    def render_offline(plan):
        """The ``rendered`` result without reading the host."""
        return render_script(plan)

    def render(self, plan, current):
        """(desired {label: canonical}, rendered, boot rules, transactions) to go from ``current`` to ``plan``."""
        script = render_script(plan)
        desired = {"nftables": desired_canonical(plan)}
        transactions = [] if current.get("nftables") == desired["nftables"] else [self._transaction(script)]
        return desired, script, script, transactions

    def removals(self, keep):
        """Transactions that remove what we own here unless its label is in ``keep``."""
        if self.table_json is None or "nftables" in keep:
            return []
        return [self._transaction(render_delete_script())]

    def gather(self):
        return gather(self.table_json)

    @staticmethod
    def ipset_names(plan):
        """The ipset sets this backend's rules name (none)."""
        return ()

    @staticmethod
    def _transaction(script):
        # The table is read for the undo only when a later transaction could fail: at 10,000 ranges the
        # read costs as much as the apply itself.
        return Transaction("nftables", "nft", script, snapshot=_nft_table.snapshot(TABLE_FAMILY, TABLE_NAME))
