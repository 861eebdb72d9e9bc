# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where policies overlap, which one wins (pure): the policy whose name sorts first.

The datapath applies policies in the order of their names, first match wins, on cluster nodes (the mark
of a new connection is set once) and on gateway nodes (SNAT is a terminal rule) alike. This module only
says what that means for the status: for each policy, the selected sources and destinations that an
earlier policy with another egress IP takes, and whether anything is left for the policy itself.
"""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils import _net


def effective_destinations(policy):
    """The planned policy's destinations minus its excluded destinations (one family)."""
    return _net.subtract(policy["destinations"], policy["excluded_destinations"])


def intersect(cidrs, others):
    return _net.subtract(cidrs, _net.subtract(cidrs, others)) if cidrs and others else ()


def shadowing(planned):
    """Policy name -> ``{"shadowed_by": [...], "shadows": [...], "fully_shadowed": bool}``.

    ``shadowed_by``: ``{policy, egress_ip, sources, destinations}`` per earlier policy (by name) with another
    egress IP that takes part of this policy's traffic; ``shadows``: the same seen from the winner.
    Sources selected by the same set of policies are worked out together (10,000 pods, a few policies)."""
    ordered = sorted(planned, key=lambda policy: policy["name"])
    effective = {policy["name"]: effective_destinations(policy) for policy in ordered}
    selecting = {}
    for policy in ordered:
        for address in policy["sources"]:
            selecting.setdefault(address, []).append(policy)
    groups = {}
    for address, policies in selecting.items():
        if len(policies) > 1:
            groups.setdefault(tuple(policy["name"] for policy in policies), []).append(address)
    by_name = {policy["name"]: policy for policy in ordered}
    lost = {}  # (loser, winner) -> {destinations tuple: [sources]}
    for names, sources in groups.items():
        won = {}
        taken = ()
        for name in names:
            policy = by_name[name]
            for winner in won:
                if by_name[winner]["egress_ip"] != policy["egress_ip"]:
                    common = intersect(effective[name], won[winner])
                    if common:
                        lost.setdefault((name, winner), {}).setdefault(common, []).extend(sources)
            won[name] = _net.subtract(effective[name], taken) if taken else effective[name]
            taken = _net.collapse(list(taken) + list(won[name])) if won[name] else taken
    result = {policy["name"]: {"shadowed_by": [], "shadows": [], "fully_shadowed": False} for policy in ordered}
    for (loser, winner), parts in sorted(lost.items()):
        for destinations, sources in parts.items():
            sources = sorted(set(sources), key=_net.address_value)
            result[loser]["shadowed_by"].append({"policy": winner, "egress_ip": by_name[winner]["egress_ip"],
                                                 "sources": sources, "destinations": list(destinations)})
            result[winner]["shadows"].append({"policy": loser, "egress_ip": by_name[loser]["egress_ip"],
                                              "sources": sources, "destinations": list(destinations)})
    for name, entry in result.items():
        if entry["shadowed_by"]:
            parts = [dict(part, source_set=set(part["sources"])) for part in entry["shadowed_by"]]
            entry["fully_shadowed"] = all(_fully_lost(address, effective[name], parts)
                                          for address in by_name[name]["sources"])
    return result


def _fully_lost(address, destinations, shadowed_by):
    taken = [cidr for part in shadowed_by if address in part["source_set"] for cidr in part["destinations"]]
    return bool(taken) and not _net.subtract(destinations, taken)
