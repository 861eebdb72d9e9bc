# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which firewall backend to use: a pure decision from facts the host read.

An accept in our own nftables table cannot override a drop in another table (for example the FORWARD
policy DROP that docker sets through iptables-nft), so ``auto`` follows the firewall the host already
uses: iptables (of the variant that holds rules) when there are foreign iptables rules, else nftables.
"""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.netkit.egress.plugins.module_utils import _iptables_save
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError

VARIANTS = ("nft", "legacy")


@dataclass(frozen=True)
class Decision:
    backend: str
    variant: str | None
    reason: str


def foreign_usage(save_text):
    """What in an iptables-save dump shows that someone else uses iptables (ours ignored)."""
    evidence = []
    rules = 0
    for table in _iptables_save.parse(save_text).values():
        for name, policy in table.chains.items():
            if _iptables_save.is_ours(name):
                continue
            if name in _iptables_save.BUILTIN_CHAINS:
                if policy not in ("ACCEPT", "-"):
                    evidence.append(f"{name} policy {policy}")
            else:
                evidence.append(f"chain {name}")
        for rule in table.rules:
            if _iptables_save.is_ours(rule.chain) or _iptables_save.is_ours(rule.spec.split()[-1] if rule.spec else ""):
                continue
            rules += 1
    if rules:
        evidence.append(f"{rules} rule{'s' if rules != 1 else ''}")
    return evidence


def _usage_by_variant(saves):
    """{variant: [evidence]} from {variant: {family: save text or None}}."""
    usage = {}
    for variant in VARIANTS:
        evidence = []
        for family, text in sorted((saves.get(variant) or {}).items()):
            evidence += [f"{family}: {item}" for item in foreign_usage(text)]
        if evidence:
            usage[variant] = evidence
    return usage


def _pick_variant(usage, default_variant):
    if default_variant in usage:
        return default_variant
    for variant in VARIANTS:
        if variant in usage:
            return variant
    return default_variant or "nft"


def needs_default_variant(backend, variant):
    """Whether ``decide`` can use the plain ``iptables`` binary's variant (a process to ask it): not when
    the parameters name the backend nftables, or iptables with its variant."""
    return not (backend == "nftables" or (backend == "iptables" and variant != "auto"))


def decide(backend, variant, nft_available, default_variant, saves):
    """backend/variant: the module parameters; default_variant: that of the plain ``iptables`` binary
    (or None if absent); saves: {variant: {family: iptables-save text or None}}."""
    usage = _usage_by_variant(saves)
    if backend == "nftables":
        if not nft_available:
            raise InputError("backend", problem="nftables requested but the nft binary is not on the host")
        return Decision("nftables", None, "backend: nftables was requested")
    if backend == "iptables":
        chosen = variant if variant != "auto" else _pick_variant(usage, default_variant)
        why = ("was requested" if variant != "auto" else
               f"holds the host's rules ({'; '.join(usage[chosen][:3])})" if chosen in usage else
               "is the variant of the iptables binary")
        return Decision("iptables", chosen, f"backend: iptables was requested; variant {chosen} {why}")
    if usage:
        chosen = variant if variant != "auto" else _pick_variant(usage, default_variant)
        evidence = "; ".join(usage.get(chosen, next(iter(usage.values())))[:3])
        return Decision("iptables", chosen,
                        f"the host already uses iptables ({chosen} variant: {evidence}); an nftables accept "
                        "could not override its verdicts, so its rules are extended in place")
    if nft_available:
        return Decision("nftables", None, "no foreign iptables rules and the nft binary is present")
    if default_variant is None:
        raise InputError("backend", problem="neither nft nor iptables is installed on the host")
    chosen = variant if variant != "auto" else default_variant
    return Decision("iptables", chosen, f"the nft binary is missing; using iptables ({chosen} variant)")
