# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iptables backend of the egress gateway (pure): render ``iptables-restore --noflush`` input, read
``iptables-save`` output back, compare our chains in iptables-save's canonical form.

We own the chains ``NETKIT-EGRESS-FWD`` (filter) and ``NETKIT-EGRESS-NAT`` (nat) of each family and one
jump rule into each from ``FORWARD`` / ``POSTROUTING``, inserted at the top only when missing. With
``--noflush``, declaring an existing chain (``:NETKIT-EGRESS-FWD - [0:0]``) empties it (checked for both
the nf_tables and the legacy variant), so re-declaring our chains replaces their rules atomically per table
and leaves every other chain alone.

Ranges and network cidrs are matched with ipset sets (``-m set --match-set``, see ``ipset``), one
rule per path like the nftables backend, so the cost per packet does not grow with the number of ranges.
The sets' contents are part of the canonical text: a changed range is a change even when no rule differs.
``IptablesBackend`` is this file (and ``ipset``) behind the interface that ``run`` uses for both backends.
"""

from __future__ import annotations

import re

from ansible_collections.netkit.egress.plugins.module_utils import _iptables_save
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway import ipset
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.plan import gathered_params
from ansible_collections.netkit.egress.plugins.module_utils._host import Host
from ansible_collections.netkit.egress.plugins.module_utils._net import FAMILIES, InputError, by_family, collapse
from ansible_collections.netkit.egress.plugins.module_utils._transaction import Transaction

FORWARD_CHAIN = "NETKIT-EGRESS-FWD"
NAT_CHAIN = "NETKIT-EGRESS-NAT"
OUR_CHAINS = {"filter": (FORWARD_CHAIN, "FORWARD"), "nat": (NAT_CHAIN, "POSTROUTING")}
NETWORK_COMMENT_PREFIX = "network="
CTSTATE = "-m conntrack --ctstate RELATED,ESTABLISHED"
SET_MATCH = re.compile(r"-m set --match-set (\S+) (src|dst)\b")


# ---- desired state --------------------------------------------------------------------------
def _comment(network):
    return f' -m comment --comment "{NETWORK_COMMENT_PREFIX}{network}"' if network else ""


def _set_matches(source_set=None, destination_set=None):
    """``-m set`` matches as iptables-save prints them (source first)."""
    text = f" -m set --match-set {source_set} src" if source_set else ""
    return text + (f" -m set --match-set {destination_set} dst" if destination_set else "")


def _path_sets(index, path):
    """(set of the network's cidrs or None, set of the path's ranges)."""
    source_set = ipset.set_name("src", index, path.family) if path.network is not None else None
    return source_set, ipset.set_name("dst", index, path.family)


def _rule(chain, source=None, destination=None, in_if=None, out_if=None, extra="", target="ACCEPT"):
    """One rule in iptables-save's canonical option order: -s -d -i -o, matches, -j."""
    parts = [f"-A {chain}"]
    if source:
        parts.append(f"-s {source}")
    if destination:
        parts.append(f"-d {destination}")
    if in_if:
        parts.append(f"-i {in_if}")
    if out_if:
        parts.append(f"-o {out_if}")
    return " ".join(parts) + extra + f" -j {target}"


def desired_rules(plan, family):
    """{'filter': [rules of NETKIT-EGRESS-FWD], 'nat': [rules of NETKIT-EGRESS-NAT]} for one family."""
    indexed = [(index, path) for index, path in enumerate(plan.paths) if path.family == family]
    paths = [path for _index, path in indexed]
    verdict = "ACCEPT" if plan.forward_accept else "RETURN"
    nif = plan.network_interface
    forward, nat = [], []
    if paths and plan.forward_accept:
        forward.append(_rule(FORWARD_CHAIN, out_if=nif, extra=" " + CTSTATE))
    if plan.reverse_nat and plan.segmented and paths:
        forward.append(_rule(FORWARD_CHAIN, in_if=nif, extra=" " + CTSTATE, target=verdict))
    for index, path in indexed:
        source_set, destination_set = _path_sets(index, path)
        forward.append(_rule(FORWARD_CHAIN, in_if=nif, out_if=path.interface,
                             extra=_set_matches(source_set, destination_set) + _comment(path.network),
                             target=verdict))
    if plan.reverse_nat and plan.forward_accept:
        for index, path in indexed:
            if path.network is not None:
                source_set, destination_set = _path_sets(index, path)
                # the way back: the path's destinations are the sources
                reverse = _set_matches(source_set=destination_set, destination_set=source_set)
                forward.append(_rule(FORWARD_CHAIN, in_if=path.interface, out_if=nif,
                                     extra=reverse + _comment(path.network)))
    if plan.segmented and plan.union.get(family):
        forward.append(_rule(FORWARD_CHAIN, in_if=nif, extra=_set_matches(None, ipset.union_set_name(family)),
                             target="DROP"))
    if plan.nat:
        # POSTROUTING cannot match the input interface: without networks the destination and the
        # outbound interface select the traffic.
        for index, path in indexed:
            source_set, destination_set = _path_sets(index, path)
            nat.append(_rule(NAT_CHAIN, out_if=path.interface,
                             extra=_set_matches(source_set, destination_set) + _comment(path.network),
                             target="MASQUERADE"))
    if plan.reverse_nat:
        for index, path in indexed:
            if path.network is not None:
                source_set, destination_set = _path_sets(index, path)
                reverse = _set_matches(source_set=destination_set, destination_set=source_set)
                nat.append(_rule(NAT_CHAIN, out_if=nif, extra=reverse + _comment(path.network),
                                 target="MASQUERADE"))
    return {"filter": forward, "nat": nat}


def referenced_sets(rules):
    """Names of the ipset sets that rules match on, in order of first use."""
    return list(dict.fromkeys(match.group(1) for rule in rules for match in SET_MATCH.finditer(rule)))


def testable(restore_text, existing_sets):
    """The restore input with matches on sets that do not exist yet left out: ``iptables-restore --test``
    asks the kernel for every set it names, and ours are created only when the run applies. The rest of
    every rule is still checked."""
    def strip(match):
        return match.group(0) if match.group(1) in existing_sets else ""
    return re.sub(" " + SET_MATCH.pattern, strip, restore_text)


def render_restore(plan, family, jumps_present=None):
    """``iptables-restore --noflush`` input for one family. ``jumps_present``: {'filter': bool, 'nat': bool}
    as read from the host; None renders the jumps (a fresh boot, or offline rendering)."""
    rules = desired_rules(plan, family)
    lines = []
    for table, (chain, builtin) in OUR_CHAINS.items():
        lines += [f"*{table}", f":{chain} - [0:0]"]
        lines += rules[table]
        if not (jumps_present or {}).get(table):
            lines.append(f"-I {builtin} 1 -j {chain}")
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def render_removal(current):
    """Restore input that deletes our jumps and chains, from the parsed current state of one family."""
    lines = []
    for table, (chain, builtin) in OUR_CHAINS.items():
        state = current.get(table, {})
        if not state.get("exists"):
            continue
        lines.append(f"*{table}")
        lines += [f"-D {builtin} -j {chain}"] * state.get("jumps", 0)
        lines += [f"-F {chain}", f"-X {chain}", "COMMIT"]
    return "\n".join(lines) + "\n" if lines else ""


def desired_canonical(plan, family):
    rules = desired_rules(plan, family)
    state = {table: {"exists": True, "jumps": 1, "rules": rules[table]} for table in OUR_CHAINS}
    state["sets"] = {name: elements for name, (_family, elements) in ipset.desired_sets(plan, family).items()}
    return _canonical_text(state)


# ---- current state (iptables-save) ----------------------------------------------------------
def parse_save(text, ipsets=None):
    """iptables-save output -> {table: {'exists', 'jumps', 'rules'}} for our chains only, plus 'sets':
    {name: elements, or None when missing} of the sets our rules match on, from ``ipsets``
    (``ipset.parse_save`` of the host's ``ipset save``)."""
    tables = _iptables_save.parse(text)
    state = {}
    for table_name, (chain, builtin) in OUR_CHAINS.items():
        table = tables.get(table_name, _iptables_save.Table())
        state[table_name] = {
            "exists": chain in table.chains,
            "jumps": sum(1 for rule in table.rules_of(builtin) if rule.spec == f"-j {chain}"),
            "rules": [rule.line for rule in table.rules_of(chain) if rule.spec]}
    names = referenced_sets(rule for table in OUR_CHAINS for rule in state[table]["rules"])
    state["sets"] = {name: (ipsets or {}).get(name, (None, None))[1] for name in names}
    return state


def current_canonical(state):
    """Canonical text of our chains in one family, or None if we own nothing there."""
    if not any(state[table]["exists"] or state[table]["jumps"] for table in OUR_CHAINS):
        return None
    return _canonical_text(state)


def _canonical_text(state):
    lines = []
    for table, (chain, builtin) in OUR_CHAINS.items():
        entry = state.get(table, {})
        if not entry.get("exists") and not entry.get("jumps"):
            continue
        lines.append(f"*{table}")
        if entry.get("exists"):
            lines.append(f":{chain}")
        lines += list(entry.get("rules", []))
        lines += [f"-A {builtin} -j {chain}"] * min(entry.get("jumps", 0), 1)
        if entry.get("jumps", 0) > 1:
            lines.append(f"# {entry['jumps']} jumps from {builtin}")
    for name, elements in sorted(state.get("sets", {}).items()):
        lines.append(f"ipset {name}: " + ("missing" if elements is None else " ".join(elements)))
    return "\n".join(lines) + "\n"


# ---- gathered -------------------------------------------------------------------------------
def _addresses(rule, options, sets, direction):
    """The CIDRs a rule matches in one direction: its ``-s``/``-d`` (rules of earlier versions, one per
    pair) or the elements of its ``--match-set NAME src|dst``; None when it does not match on them."""
    flag = "-s" if direction == "src" else "-d"
    if flag in options:
        return [options[flag]]
    for match in SET_MATCH.finditer(rule):
        if match.group(2) == direction:
            return list(sets.get(match.group(1)) or ())
    return None


def gather(states):
    """{family: parsed state} -> module parameters that would recreate our chains, and interfaces."""
    network_interface, forward_accept, nat, reverse_nat = None, True, False, False
    networks, plain_ranges, interfaces, union = {}, [], {}, []
    found = False
    for family in FAMILIES:
        state = states.get(family)
        if not state or current_canonical(state) is None:
            continue
        found = True
        sets = state.get("sets", {})
        for rule in state["filter"]["rules"]:
            opts = _iptables_save.options(rule)
            comment = opts.get("--comment", "")
            network = comment[len(NETWORK_COMMENT_PREFIX):] if comment.startswith(NETWORK_COMMENT_PREFIX) else None
            sources, destinations = (_addresses(rule, opts, sets, "src"), _addresses(rule, opts, sets, "dst"))
            if opts.get("-j") == "DROP" and destinations is not None:
                network_interface = opts.get("-i", network_interface)
                union += destinations
            elif destinations is not None and "-i" in opts and "-o" in opts and "--ctstate" not in opts:
                if network_interface is not None and opts["-i"] != network_interface:
                    continue  # a reverse-direction accept
                if network is None and sources is not None:
                    continue
                network_interface = opts["-i"]
                forward_accept = opts.get("-j") == "ACCEPT"
                for destination in destinations:
                    interfaces[destination] = opts["-o"]
                if network is None:
                    plain_ranges += destinations
                else:
                    entry = networks.setdefault(network, {"name": network, "cidr": [], "ranges": []})
                    for key, values in (("cidr", sources or ()), ("ranges", destinations)):
                        entry[key] += [value for value in values if value not in entry[key]]
        for rule in state["nat"]["rules"]:
            opts = _iptables_save.options(rule)
            if opts.get("-o") == network_interface and network_interface is not None:
                reverse_nat = True
            else:
                nat = True
    if not found:
        return None
    for entry in networks.values():
        grouped = by_family(entry["cidr"])
        entry["cidr"] = [cidr for family in FAMILIES for cidr in collapse(grouped.get(family, ()))]
    return gathered_params("iptables", plain_ranges, union, networks, interfaces, nat=nat,
                           network_interface=network_interface, reverse_nat=reverse_nat,
                           forward_accept=forward_accept)


# ---- roll back ------------------------------------------------------------------------------
def _ours_and_jumps(text, prefix):
    """{table: {"ours": {chain: [rule lines]}, "jumps": {builtin: [(position, spec)]}}}"""
    found = {}
    for name, table in _iptables_save.parse(text).items():
        ours, jumps = {}, {}
        for chain in table.chains:
            if _iptables_save.is_ours(chain, prefix):
                ours.setdefault(chain, [])
        for rule in table.rules:
            if _iptables_save.is_ours(rule.chain, prefix):
                ours.setdefault(rule.chain, []).append(rule.line)
            elif rule.jumps_to(prefix):
                jumps.setdefault(rule.chain, []).append((rule.position, rule.spec))
        found[name] = {"ours": ours, "jumps": jumps}
    return found


def restore_previous(original, current, prefix=_iptables_save.OUR_CHAIN_PREFIX):
    """``iptables-restore --noflush`` input that turns our chains and jumps in ``current`` (an
    ``iptables-save`` text read now) back into those of ``original`` (read before the run); ``""``
    when they already are the same. Foreign chains and rules are never named."""
    before, now = _ours_and_jumps(original, prefix), _ours_and_jumps(current, prefix)
    lines = []
    for table in sorted(set(before) | set(now)):
        old = before.get(table, {"ours": {}, "jumps": {}})
        new = now.get(table, {"ours": {}, "jumps": {}})
        if old == new:
            continue
        lines.append(f"*{table}")
        for builtin, jumps in sorted(new["jumps"].items()):
            lines += [f"-D {builtin} {spec}" for _position, spec in jumps]
        # Declaring an existing chain with --noflush empties it (both variants); new ones are created.
        lines += [f":{chain} - [0:0]" for chain in sorted(old["ours"])]
        extra = sorted(set(new["ours"]) - set(old["ours"]))
        lines += [f"-F {chain}" for chain in extra]
        lines += [f"-X {chain}" for chain in extra]
        for chain in sorted(old["ours"]):
            lines += old["ours"][chain]
        for builtin, jumps in sorted(old["jumps"].items()):
            lines += [f"-I {builtin} {position} {spec}" for position, spec in sorted(jumps)]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n" if lines else ""


# ---- the backend interface ------------------------------------------------------------------
def states_of(firewall, variant):
    """{family: parsed state of our chains} of one variant, from the host state read once."""
    return {family: parse_save(text, firewall.get("ipsets"))
            for family, text in (firewall["saves"].get(variant) or {}).items()}


class IptablesBackend:
    """Our chains of one iptables variant (and the ipset sets they match on), from the host state
    ``run.read_firewall`` read once."""
    name = "iptables"

    def __init__(self, firewall, variant):
        self.variant = variant
        self.firewall = firewall
        self.states = states_of(firewall, variant)

    def label(self, family):
        return f"iptables-{self.variant} {family}"

    def current(self):
        """{label: canonical text} of what we own now in this variant."""
        found = {}
        for family, parsed in self.states.items():
            canonical = current_canonical(parsed)
            if canonical is not None:
                found[self.label(family)] = canonical
        return found

    @staticmethod
    def render_offline(plan):
        """The ``rendered`` result without reading the host."""
        rendered = {family: render_restore(plan, family) for family in plan.families}
        rendered["ipset"] = ipset.render_restore(ipset.desired_sets(plan))
        return rendered

    def _restore(self, family, payload):
        variant, saves = self.variant, self.firewall["saves"]

        def undo(host):
            # What a half-applied file left is known only after the failure: read it then.
            return restore_previous(saves[variant][family], host.iptables_save(family, variant))
        return Transaction(self.label(family), "iptables-restore", payload, undo=undo, target=(family, variant),
                           test_payload=testable(payload, set(self.firewall.get("ipsets", {}))))

    def render(self, plan, current):
        """(desired {label: canonical}, rendered, boot rules, transactions) to go from ``current`` to ``plan``."""
        if not self.firewall.get("ipset_available"):
            raise InputError("backend", problem="the iptables backend matches ranges with ipset sets, and the ipset "
                             "binary is not on the host (install the ipset package, or use backend: nftables)")
        desired, rendered, boot, transactions = {}, {}, {}, []
        for family in plan.families:
            parsed = self.states.get(family)
            if parsed is None:
                raise InputError("backend",
                                 problem=f"{Host.iptables_binary(family, self.variant, 'save')} is not installed")
            label = self.label(family)
            desired[label] = desired_canonical(plan, family)
            jumps = {table: parsed[table]["jumps"] > 0 for table in OUR_CHAINS}
            rendered[family] = render_restore(plan, family, jumps)
            boot[family] = render_restore(plan, family)
            if current.get(label) != desired[label]:
                transactions.append(self._restore(family, rendered[family]))
        sets, existing = ipset.desired_sets(plan), self.firewall["ipsets"]
        rendered["ipset"] = boot["ipset"] = ipset.render_restore(sets)
        if transactions:
            # Sets are prepared before the rules (a rule cannot name a set that does not exist) and swapped
            # in after them: a failed rule change is undone by destroying what was prepared.
            prepare, commit = ipset.render_prepare(sets, existing), ipset.render_commit(sets, existing)
            if prepare:
                undo = ipset.render_destroy(ipset.prepared_names(sets, existing))
                transactions.insert(0, Transaction("ipset", "ipset", prepare, undo=undo))
            if commit:
                swapped = {name: existing[name] for name in ipset.changed_sets(sets, existing) if name in existing}
                # Undone by swapping the old content back; the undo of the preparation then destroys NAME-new.
                transactions.append(Transaction("ipset", "ipset", commit,
                                                undo=ipset.render_restore(swapped, keep_temp=True)))
        return desired, rendered, boot, transactions

    def removals(self, keep):
        """Transactions that remove our chains of this variant, except the families whose label is in ``keep``."""
        return [self._restore(family, render_removal(parsed)) for family, parsed in self.states.items()
                if self.label(family) not in keep and current_canonical(parsed) is not None]

    @staticmethod
    def ipset_names(plan):
        """The ipset sets this backend's rules name."""
        return set(ipset.desired_sets(plan))

    def gather(self):
        found = gather(self.states)
        if found:
            found[0]["iptables_variant"] = self.variant
        return found

    def gathered_raw(self):
        return {family: current_canonical(parsed) for family, parsed in self.states.items()
                if current_canonical(parsed) is not None}


def stale_set_removal(firewall, keep_sets):
    """Destroys our ipset sets that no desired rule names; last, once no rule of ours names them any more."""
    stale = [name for name in firewall.get("ipsets", {}) if name not in keep_sets]
    return [Transaction("ipset", "ipset", ipset.render_destroy(stale), undo="")] if stale else []
