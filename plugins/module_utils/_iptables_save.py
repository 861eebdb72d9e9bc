# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one reader of ``iptables-save`` text (pure).

``parse(text)`` gives every table's chains (with their policies) and rules in order; the backend choice,
the egress gateway's state, and the roll-back of a half-applied run all read that one structure.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

BUILTIN_CHAINS = frozenset(["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"])
OUR_CHAIN_PREFIX = "NETKIT-"


@dataclass(frozen=True)
class Rule:
    """``-A CHAIN SPEC`` as iptables-save prints it; ``position`` counts from 1 within its chain."""
    chain: str
    spec: str
    position: int

    @property
    def line(self):
        return f"-A {self.chain} {self.spec}" if self.spec else f"-A {self.chain}"

    @property
    def target(self):
        """The chain or target of ``-j``/``-g``, or None."""
        words = self.spec.split()
        for index, word in enumerate(words[:-1]):
            if word in ("-j", "-g"):
                return words[index + 1]
        return None

    def jumps_to(self, prefix):
        return f" -j {prefix}" in f" {self.spec}" or f" -g {prefix}" in f" {self.spec}"


@dataclass
class Table:
    chains: dict = field(default_factory=dict)  # name -> policy ('-' for user chains)
    rules: list = field(default_factory=list)   # [Rule] in the dump's order

    def rules_of(self, chain):
        return [rule for rule in self.rules if rule.chain == chain]


def parse(text):
    """iptables-save output -> {table name: Table}."""
    tables = {}
    table = None
    positions = {}
    for line in (text or "").splitlines():
        if line.startswith("*"):
            table = tables.setdefault(line[1:].strip(), Table())
            positions = {}
        elif table is None:
            continue
        elif line.startswith(":"):
            name, policy = (line[1:].split() + ["-"])[:2]
            table.chains[name] = policy
        elif line.startswith("-A "):
            words = line.split(" ", 2)
            chain = words[1]
            positions[chain] = positions.get(chain, 0) + 1
            table.rules.append(Rule(chain, words[2] if len(words) > 2 else "", positions[chain]))
    return tables


def is_ours(chain, prefix=OUR_CHAIN_PREFIX):
    return chain.startswith(prefix)


def options(spec):
    """``-s X -d Y -i I -o O ... -j T`` -> {'-s': X, ..., '--comment': C, '-j': T} (first value of each)."""
    words = shlex.split(spec)
    found = {}
    for index, word in enumerate(words):
        if word.startswith("-") and index + 1 < len(words) and not words[index + 1].startswith("-"):
            found.setdefault(word, words[index + 1])
    return found
