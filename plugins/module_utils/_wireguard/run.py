# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of netkit.egress.wireguard: read once, plan the difference, hand it to the transaction engine.

Ownership: the module owns the interface it created (recorded by the marker line of the config it persists)
and, on it, the peers and addresses that config lists. An interface of the same name that it did not create
is never touched; a peer someone else added to our interface is left as it is (and a range it holds cannot
be given to one of our peers).
"""

from __future__ import annotations

import dataclasses
import json

from ansible_collections.netkit.egress.plugins.module_utils import _transaction
from ansible_collections.netkit.egress.plugins.module_utils._host import HostError
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError, cidr_of
from ansible_collections.netkit.egress.plugins.module_utils._transaction import Transaction
from ansible_collections.netkit.egress.plugins.module_utils._wireguard import model, read, render

KINDS = {"wireguard": "kernel", "tun": "wireguard-go"}


class Plan:
    def __init__(self):
        self.transactions = []
        self.summary = []
        self.public_key = None
        self.implementation = None
        self.after_text = ""
        self.before_text = ""
        self.foreign_peers = []
        self.peers_after = []

    @property
    def changed(self):
        return bool(self.transactions)

    @property
    def commands(self):
        return [_transaction.describe(transaction) for transaction in self.transactions]


def read_live(host, interface):
    live = read.Live()
    links = host.link_detail(interface)
    if not links:
        return live
    live.exists = True
    live.kind, live.up = read.parse_link(links)
    if live.kind in KINDS:
        dump = host.wg_dump(interface)
        if dump is not None:
            live.public_key, live.listen_port, live.fwmark, live.peers = read.parse_dump(dump)
    live.addresses = read.parse_addresses(host.ip_json("address", "show", "dev", interface))
    return live


def check_ownership(desired, live, persisted, config_text):
    if config_text is not None and not persisted.ours:
        raise InputError("interface", desired.interface,
                         f"has a WireGuard config {desired.config_path} that netkit.egress did not write; "
                         "it is left alone: remove it or choose another interface")
    if live.exists and not persisted.ours:
        raise InputError("interface", desired.interface,
                         "exists and netkit.egress did not create it (no config of ours at "
                         f"{desired.config_path}); it is left alone: remove it or choose another interface")
    if live.exists and live.kind not in KINDS:
        raise InputError("interface", desired.interface,
                         f"exists and is not a WireGuard interface (link kind {live.kind})")


def check_foreign_peers(desired, live, persisted):
    """Foreign peers (on our interface, never configured by us) keep their ranges: refuse to take one."""
    if desired.peers is None:
        return []
    wanted = desired.peers_by_key
    foreign = [peer for key, peer in sorted(live.peers.items()) if key not in wanted and key not in persisted.peers]
    for index, peer in enumerate(desired.peers):
        for position, text in enumerate(peer.allowed_ips):
            cidr = cidr_of(text)
            for other in foreign:
                for theirs in other.allowed_ips:
                    their_cidr = cidr_of(theirs)
                    if cidr.overlaps(their_cidr) and (cidr.prefix == 0) == (their_cidr.prefix == 0):
                        raise InputError(f"peers[{index}].allowed_ips[{position}]", text,
                                         f"overlaps {theirs} of peer {other.public_key}, which netkit.egress "
                                         "did not configure (a foreign peer, left alone)")
    return foreign


def choose_implementation(host, desired, live):
    if live.exists:
        return KINDS[live.kind]
    if desired.implementation != "auto":
        return desired.implementation
    return "kernel" if host.kernel_has_wireguard() else "wireguard-go"


def plan_present(host, desired, live, persisted):
    if desired.peers is None:
        # Only the interface, its key and addresses: what peers need (fwmark, forwarding, the internet route)
        # stays as the last full run left it.
        desired = dataclasses.replace(desired, internet=persisted.internet, forwarding=persisted.forwarding,
                                      fwmark=desired.fwmark or live.fwmark)
    plan = Plan()
    plan.foreign_peers = check_foreign_peers(desired, live, persisted)
    interface = desired.interface
    plan.implementation = choose_implementation(host, desired, live)
    if plan.implementation == "wireguard-go" and not live.exists and not host.has("wireguard-go"):
        raise HostError("the kernel has no WireGuard and wireguard-go is not installed (apt install wireguard-go)")

    key_text = host.read_file(desired.private_key_file)
    key_generated = persisted.key_generated
    if key_text is None:
        key_generated = True
        if not host.module.check_mode:
            key_text = host.wg_genkey()
            plan.transactions.append(Transaction("private key", "write", key_text, "remove",
                                                 target=(desired.private_key_file, 0o600), undo_tool="remove"))
            plan.summary.append(f"private key generated into {desired.private_key_file} (mode 0600)")
        else:
            plan.summary.append(f"a private key would be generated into {desired.private_key_file}")
    else:
        try:
            model.validate_key(key_text.strip(), "private_key_file")
        except InputError:
            # Never the file's content in a message: it may be a key in the wrong format.
            raise InputError("private_key_file", desired.private_key_file,
                             "does not hold a WireGuard private key (base64 of 32 bytes)") from None
    plan.public_key = host.wg_pubkey(key_text) if key_text else None

    if not live.exists:
        # auto: the kernel's WireGuard when the probe says it has one, and wireguard-go should `ip link add`
        # still fail (a module that cannot be loaded in a container); the result reports what was made.
        fallback = "wireguard-go" if desired.implementation == "auto" and host.has("wireguard-go") else ""
        plan.transactions.append(Transaction("interface", "wireguard-link", plan.implementation,
                                             f"link del {interface}\n", target=(interface, fallback),
                                             undo_tool="ip-batch"))
        plan.summary.append(f"interface {interface} created ({plan.implementation})")

    set_key = not live.exists or key_text is None or live.public_key != plan.public_key
    args, undo, summary = render.wg_set_args(desired, live, persisted, set_key)
    if args:
        plan.transactions.append(Transaction("wireguard peers", "wg-set", json.dumps(args),
                                             json.dumps(undo) if undo else None, target=(interface,)))
        plan.summary += summary

    lines, undo_lines = render.address_lines(desired, live.addresses, persisted.addresses, interface)
    if not live.up:
        lines.append(f"link set {interface} up")
    if lines:
        plan.transactions.append(Transaction("addresses", "ip-batch", "".join(line + "\n" for line in lines),
                                             "".join(line + "\n" for line in reversed(undo_lines)) or None))

    for family in render.desired_families(desired) if desired.forwarding else ():
        name = render.forwarding_sysctl(family)
        current = host.sysctl_get(name)
        if current != "1":
            plan.transactions.append(Transaction(f"sysctl {name}", "sysctl", "1", current or "0", target=(name,)))
    plan_internet(host, desired, persisted, plan)

    peers_after = list(desired.peers) if desired.peers is not None else list(persisted.peers.values())
    config = render.config_text(desired, peers_after, key_generated)
    previous = host.read_file(desired.config_path)
    if config != previous:
        plan.transactions.append(Transaction("persisted config", "write", config,
                                             previous if previous is not None else "remove",
                                             target=(desired.config_path, 0o600),
                                             undo_tool=None if previous is not None else "remove"))
        plan.summary.append(f"config {desired.config_path} written (mode 0600)")
    plan.peers_after = peers_after
    plan.before_text = render.state_text(live.exists, live.addresses, live.listen_port, live.fwmark,
                                         list(live.peers.values()), persisted.internet)
    after_peers = {peer.public_key: peer for peer in plan.foreign_peers}
    after_peers.update({peer.public_key: peer for peer in peers_after})
    kept_addresses = [text for text in live.addresses if text not in persisted.addresses]
    plan.after_text = render.state_text(True, model.sort_cidrs(set(desired.addresses) | set(kept_addresses)),
                                        desired.listen_port or live.listen_port, desired.fwmark,
                                        list(after_peers.values()), desired.internet)
    return plan


def read_rules(host, family):
    return host.ip_json("rule", "show", family=family)


def read_internet_state(host, family, *internets):
    """(rules, {table: routes}) of one family, for the tables of the given internet routes."""
    tables = {internet.table for internet in internets if internet and family in internet.families}
    return read_rules(host, family), {table: host.route_table(table, family) for table in sorted(tables)}


def plan_internet(host, desired, persisted, plan):
    """The default route through the tunnel (wg-quick's fwmark policy routing), both directions."""
    wanted, previous = desired.internet, persisted.internet
    for family in ("ipv4", "ipv6"):
        if not any(internet and family in internet.families for internet in (wanted, previous)):
            continue
        rules, routes = read_internet_state(host, family, wanted, previous)
        lines, undo = render.internet_changes(wanted, previous, rules, routes, desired.interface, family)
        if lines:
            plan.transactions.append(Transaction(f"internet route {family}", "ip-batch",
                                                 "".join(line + "\n" for line in lines),
                                                 "".join(line + "\n" for line in undo) or None, target=(family,)))
            plan.summary.append(f"internet route {family} through {desired.interface} "
                                f"({'fail-open' if wanted.fail_open else 'fail-closed'})" if wanted and
                                family in wanted.families else f"internet route {family} removed")
    if wanted and host.sysctl_get("net.ipv4.conf.all.src_valid_mark") != "1":
        plan.transactions.append(Transaction("sysctl net.ipv4.conf.all.src_valid_mark", "sysctl", "1",
                                             host.sysctl_get("net.ipv4.conf.all.src_valid_mark") or "0",
                                             target=("net.ipv4.conf.all.src_valid_mark",)))


def plan_absent(host, desired, live, persisted):
    plan = Plan()
    if not persisted.ours:
        if live.exists:
            plan.summary.append(f"interface {desired.interface} is not ours: left alone")
        return plan
    plan.implementation = KINDS.get(live.kind) if live.exists else None
    for family in persisted.internet.families if persisted.internet else ():
        rules, routes = read_internet_state(host, family, persisted.internet)
        lines, undo = render.internet_changes(None, persisted.internet, rules, routes, desired.interface, family)
        if lines:
            plan.transactions.append(Transaction(f"internet route {family}", "ip-batch",
                                                 "".join(line + "\n" for line in lines),
                                                 "".join(line + "\n" for line in undo), target=(family,)))
            plan.summary.append(f"internet route {family} removed")
    if live.exists:
        plan.transactions.append(Transaction("interface", "ip-batch", f"link del {desired.interface}\n", None))
        plan.summary.append(f"interface {desired.interface} removed")
    previous = host.read_file(desired.config_path)
    if persisted.key_generated and host.read_file(desired.private_key_file) is not None:
        plan.transactions.append(Transaction("private key", "remove", "remove", None,
                                             target=(desired.private_key_file,)))
        plan.summary.append(f"generated private key {desired.private_key_file} removed")
    plan.transactions.append(Transaction("persisted config", "remove", "remove", previous,
                                         target=(desired.config_path, 0o600), undo_tool="write"))
    plan.summary.append(f"config {desired.config_path} removed")
    plan.before_text = render.state_text(live.exists, live.addresses, live.listen_port, live.fwmark,
                                         list(live.peers.values()))
    return plan


def plan_run(host, params):
    desired = model.validate(params)
    live = read_live(host, desired.interface)
    config_text = host.read_file(desired.config_path)
    persisted = read.parse_config(config_text)
    if desired.state == "absent":
        return desired, plan_absent(host, desired, live, persisted)
    check_ownership(desired, live, persisted, config_text)
    return desired, plan_present(host, desired, live, persisted)


def apply(host, desired, plan):
    _transaction.apply(host, plan.transactions)
    kind, _up = read.parse_link(host.link_detail(desired.interface))
    plan.implementation = KINDS.get(kind, plan.implementation)


def result(desired, plan, diff=False):
    """The module result: never a private key (only its file's path and the public key)."""
    peers = [{"public_key": peer.public_key, "name": peer.name, "allowed_ips": list(peer.allowed_ips),
              "endpoint": peer.endpoint, "persistent_keepalive": peer.persistent_keepalive}
             for peer in plan.peers_after]
    output = dict(changed=plan.changed, interface=desired.interface, state=desired.state,
                  implementation=plan.implementation, public_key=plan.public_key,
                  addresses=list(desired.addresses), listen_port=desired.listen_port,
                  private_key_file=desired.private_key_file, config_path=desired.config_path,
                  peers=peers, foreign_peers=[peer.public_key for peer in plan.foreign_peers],
                  commands=plan.commands, summary=plan.summary)
    if diff:
        output["diff"] = dict(before=plan.before_text, after=plan.after_text)
    return output
