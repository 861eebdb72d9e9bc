# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Undo input for an apply that failed half way (pure: texts in, texts out).

An ``nft -f`` script is one kernel transaction, but a run may need several of them (nftables and
iptables, two address families, two iptables tables per ``iptables-restore`` file) and ``ip -batch``
stops at the first failing line with the earlier lines applied. When a later step fails, these
renderers give back what we own exactly as it was read before the run: our nftables table from its
``nft list table`` text, our ``NETKIT-*`` chains and the jumps into them (at their old positions) from
the ``iptables-save`` text. Foreign objects are never named.
"""

from __future__ import annotations

OUR_CHAIN_PREFIX = "NETKIT-"


def nft_table_restore(family, name, listing):
    """One nft transaction that puts table ``family name`` back as ``listing`` (``nft list table``
    text), or removes it when it did not exist (``listing`` None)."""
    script = f"table {family} {name} {{}}\ndelete table {family} {name}\n"
    return script + listing if listing else script


def _parse_save(text, prefix):
    """{table: {"ours": {chain: [rule lines]}, "jumps": {builtin: [(position, spec)]}}}"""
    tables = {}
    table = None
    positions = {}
    for line in (text or "").splitlines():
        if line.startswith("*"):
            table = tables.setdefault(line[1:].strip(), {"ours": {}, "jumps": {}})
            positions = {}
        elif table is None:
            continue
        elif line.startswith(":"):
            chain = line[1:].split()[0]
            if chain.startswith(prefix):
                table["ours"].setdefault(chain, [])
        elif line.startswith("-A "):
            words = line.split(" ", 2)
            chain = words[1]
            positions[chain] = positions.get(chain, 0) + 1
            if chain.startswith(prefix):
                table["ours"].setdefault(chain, []).append(line)
            elif " -j " + prefix in line or " -g " + prefix in line:
                spec = words[2] if len(words) > 2 else ""
                table["jumps"].setdefault(chain, []).append((positions[chain], spec))
    return tables


def iptables_restore_previous(original, current, prefix=OUR_CHAIN_PREFIX):
    """``iptables-restore --noflush`` input that turns our chains and jumps in ``current`` (an
    ``iptables-save`` text read now) back into those of ``original`` (read before the run); ``""``
    when they already are the same."""
    before, now = _parse_save(original, prefix), _parse_save(current, prefix)
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
