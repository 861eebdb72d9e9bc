# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One engine that applies a run's changes: check -> apply -> roll back, for every module.

A module's planner turns the difference between desired and current state into a list of
``Transaction``s; this engine lets the kernel check the ones that have a test mode, applies them in
order, and when one fails puts back what the earlier ones (and a half-applied one) changed, then says so
in the error. The tools and how each is run live in ``_host.Host.apply``; this file decides only order,
checking and undo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

from ansible_collections.netkit.egress.plugins.module_utils._host import Host, HostError

# Tools whose failed run changed nothing (one kernel transaction, one write): their undo is not needed
# for themselves, only when a later transaction fails.
ATOMIC_TOOLS = frozenset(["nft", "sysctl", "write", "remove"])
# Tools with a test mode (``nft -c``, ``iptables-restore --test``).
CHECKABLE_TOOLS = frozenset(["nft", "iptables-restore"])


@dataclass(frozen=True)
class Transaction:
    """One change of the host.

    label: what it changes, for messages (``nftables``, ``iptables-nft ipv4``, ``routes ipv6``)
    tool: how it is applied (``nft``, ``iptables-restore``, ``ipset``, ``ip-batch``, ``sysctl``, ``write``,
          ``remove``, ``wg-set``, ``wireguard-link``; see ``Host.apply``); target: the tool's arguments
          ((family, variant) of iptables-restore, (family,) of ip-batch, (name,) of sysctl, (path, mode) of
          write/remove, (interface,) of wg-set, (interface, fallback) of wireguard-link)
    payload: the tool's input
    undo: the input (same tool and target) that puts back what this one changed: a text, or a function
          of the host called at roll-back time (when the undo depends on what a half-applied run left)
    snapshot: a function of the host, called just before applying, that returns the undo (when the undo
          needs state that only the apply destroys; called only when a later transaction could fail)
    test_payload: what the kernel checks instead of the payload (None: the payload itself)
    """
    label: str
    tool: str
    payload: str
    undo: Union[str, Callable, None] = None
    target: tuple = ()
    snapshot: Optional[Callable] = None
    test_payload: Optional[str] = None
    undo_tool: Optional[str] = None


def check(host, transactions):
    """Let the kernel check every transaction that has a test mode, before the first one is applied."""
    for transaction in transactions:
        if transaction.tool in CHECKABLE_TOOLS:
            payload = transaction.payload if transaction.test_payload is None else transaction.test_payload
            host.apply(transaction.tool, payload, transaction.target, test=True)


def apply(host, transactions):
    """Apply every transaction in order; on a failure, roll back and raise HostError saying what happened."""
    undos = {}
    for index, transaction in enumerate(transactions):
        if transaction.snapshot is not None and index < len(transactions) - 1:
            undos[index] = transaction.snapshot(host)
        try:
            host.apply(transaction.tool, transaction.payload, transaction.target)
        except HostError as exc:
            failed_changed_something = transaction.tool not in ATOMIC_TOOLS
            done = list(range(index + (1 if failed_changed_something else 0)))
            problems = roll_back(host, transactions, done, undos)
            outcome = (f"rolling back failed too: {'; '.join(problems)}" if problems
                       else "everything applied before it was rolled back, the host is as it was")
            raise HostError(f"applying {transaction.label} failed: {exc}; {outcome}") from None


def roll_back(host, transactions, done, undos):
    """Undo the transactions of indexes ``done``, last first; returns the problems (empty: all undone)."""
    problems = []
    for index in reversed(done):
        transaction = transactions[index]
        undo = undos.get(index, transaction.undo)
        try:
            if callable(undo):
                undo = undo(host)
            if undo:
                host.apply(transaction.undo_tool or transaction.tool, undo, transaction.target, undo=True)
        except HostError as exc:
            problems.append(f"{transaction.label}: {exc}")
    return problems


def file_transactions(host, desired, owned_paths):
    """The transactions that make our files as ``desired`` (``{path: (content, mode)}``): write what differs,
    remove those of ``owned_paths`` no longer wanted. Returns (transactions, changed paths, {path: text}
    before, {path: text} after), the last two for diffs."""
    transactions, changed = [], []
    before, after = {}, {}
    for path in owned_paths:
        current = host.read_file(path)
        wanted = desired.get(path)
        if current is not None:
            before[path] = current
        if wanted is not None:
            after[path] = wanted[0]
        if wanted is None and current is not None:
            transactions.append(Transaction(f"remove {path}", "remove", "", undo=current, target=(path,),
                                            undo_tool="write"))
            changed.append(path)
        elif wanted is not None and (current != wanted[0] or host.file_mode(path) != wanted[1]):
            undo = current if current is not None else (lambda target_host, path=path: target_host.remove_file(path)
                                                        and None)
            transactions.append(Transaction(f"write {path}", "write", wanted[0], target=(path, wanted[1]),
                                            undo=undo))
            changed.append(path)
    return transactions, changed, before, after


def describe(transaction):
    """The command a transaction runs, as shell-like text for ``commands`` results."""
    return describe_tool(transaction.tool, transaction.payload, transaction.target)


def describe_tool(tool, payload, target):
    if tool == "nft":
        return f"nft -f - <<EOF\n{payload}EOF"
    if tool == "ipset":
        return f"ipset -exist restore <<EOF\n{payload}EOF"
    if tool == "iptables-restore":
        family, variant = target
        return f"{Host.iptables_binary(family, variant, 'restore')} --noflush <<EOF\n{payload}EOF"
    if tool == "ip-batch":
        flag = {"ipv4": " -4", "ipv6": " -6"}.get(target[0] if target else None, "")
        return f"ip{flag} -batch - <<EOF\n{payload}EOF"
    if tool == "sysctl":
        return f"sysctl -w {target[0]}={payload}"
    if tool == "write":
        return f"write {target[0]}"
    if tool == "remove":
        return f"remove {target[0]}"
    if tool == "wg-set":
        import json
        import shlex

        return f"wg set {target[0]} {shlex.join(json.loads(payload))}"
    if tool == "wireguard-link":
        if payload == "kernel":
            return f"ip link add {target[0]} type wireguard" + (" (else wireguard-go)" if target[1:] and target[1] else "")
        return f"wireguard-go {target[0]}"
    raise ValueError(f"unknown tool {tool!r}")
