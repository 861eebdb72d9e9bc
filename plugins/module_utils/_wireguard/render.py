# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure renderers of one WireGuard interface: the persisted wg-quick config, the ``wg set`` arguments that
turn the live state into the desired one (and back), the ``ip`` lines of addresses and of the internet
route. No secret is ever rendered: the private key stays in its file, named by path only.
"""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils._net import family_of
from ansible_collections.netkit.egress.plugins.module_utils._wireguard.model import endpoint_is_literal
from ansible_collections.netkit.egress.plugins.module_utils._wireguard.read import KEY_GENERATED, MARKER, internet_marker

DEFAULTS = {"ipv4": "0.0.0.0/0", "ipv6": "::/0"}
UNREACHABLE_METRIC = 4294967295


# ---- wg-quick config --------------------------------------------------------------------------
def peer_lines(peer):
    lines = ["[Peer]"]
    if peer.name:
        lines.append(f"# name: {peer.name}")
    lines.append(f"PublicKey = {peer.public_key}")
    if peer.endpoint:
        lines.append(f"Endpoint = {peer.endpoint}")
    if peer.allowed_ips:
        lines.append(f"AllowedIPs = {', '.join(peer.allowed_ips)}")
    if peer.persistent_keepalive:
        lines.append(f"PersistentKeepalive = {peer.persistent_keepalive}")
    return lines


def config_text(desired, peers, key_generated):
    """The wg-quick config that brings the interface back at boot (``wg-quick up PATH``). ``Table = off``:
    routes belong to netkit.egress.egress_routes (and to the internet route below), not to wg-quick."""
    lines = [MARKER]
    if key_generated:
        lines.append(KEY_GENERATED)
    if desired.internet:
        lines.append(internet_marker(desired.internet))
    lines.append("[Interface]")
    if desired.addresses:
        lines.append(f"Address = {', '.join(desired.addresses)}")
    if desired.listen_port:
        lines.append(f"ListenPort = {desired.listen_port}")
    if desired.fwmark:
        lines.append(f"FwMark = {desired.fwmark}")
    lines.append("Table = off")
    lines.append(f"PostUp = wg set %i private-key {desired.private_key_file}")
    if desired.forwarding:
        for family in desired_families(desired):
            lines.append(f"PostUp = sysctl -q -w {forwarding_sysctl(family)}=1")
    if desired.internet:
        lines.append("PostUp = sysctl -q -w net.ipv4.conf.all.src_valid_mark=1")
        for family in desired.internet.families:
            lines += [f"PostUp = ip {family_flag(family)} {line}"
                      for line in internet_lines(desired.internet, "%i", family)]
        for family in desired.internet.families:
            lines += [f"PreDown = ip {family_flag(family)} {line}" for line in internet_undo_lines(desired.internet, family)]
    for peer in peers:
        lines.append("")
        lines += peer_lines(peer)
    return "\n".join(lines) + "\n"


def syncconf_text(peers, listen_port=None, fwmark=0):
    """``wg syncconf`` input (the wg(8) format, as ``wg-quick strip`` prints it) without the private key:
    for users who render offline."""
    lines = ["[Interface]"]
    if listen_port:
        lines.append(f"ListenPort = {listen_port}")
    if fwmark:
        lines.append(f"FwMark = {fwmark}")
    for peer in peers:
        lines.append("")
        lines += [line for line in peer_lines(peer) if not line.startswith("#")]
    return "\n".join(lines) + "\n"


def desired_families(desired):
    return sorted({family_of(address) for address in desired.addresses}) or ["ipv4"]


def forwarding_sysctl(family):
    return "net.ipv4.ip_forward" if family == "ipv4" else "net.ipv6.conf.all.forwarding"


# ---- wg set -----------------------------------------------------------------------------------
def peer_args(peer):
    args = ["peer", peer.public_key]
    if peer.endpoint:
        args += ["endpoint", peer.endpoint]
    args += ["persistent-keepalive", str(peer.persistent_keepalive or "off"),
             "allowed-ips", ",".join(peer.allowed_ips)]
    return args


def peer_matches(wanted, live, persisted):
    """Whether the live peer already is ``wanted``. An endpoint given as a host name is resolved by wg, so the
    live endpoint is an address: it counts as equal when the last run set that same host name."""
    if live is None:
        return False
    if wanted.allowed_ips != live.allowed_ips or wanted.persistent_keepalive != live.persistent_keepalive:
        return False
    if not wanted.endpoint:
        return True
    if endpoint_is_literal(wanted.endpoint):
        return wanted.endpoint == live.endpoint
    return live.endpoint is not None and persisted is not None and persisted.endpoint == wanted.endpoint


def wg_set_args(desired, live, persisted, set_key):
    """(args, undo_args, summary) of the one ``wg set IF ...`` that makes the live interface the desired one.
    Peers we did not configure before (foreign ones) are neither changed nor removed."""
    args, undo, summary = [], [], []
    if set_key:
        args += ["private-key", desired.private_key_file]
        summary.append("private key set from its file")
    if desired.listen_port and desired.listen_port != live.listen_port:
        args += ["listen-port", str(desired.listen_port)]
        undo += ["listen-port", str(live.listen_port or 0)]
    if desired.fwmark != live.fwmark:
        args += ["fwmark", str(desired.fwmark or "off")]
        undo += ["fwmark", str(live.fwmark or "off")]
    if desired.peers is not None:
        wanted = desired.peers_by_key
        for key in sorted(persisted.peers):
            if key not in wanted and key in live.peers:
                args += ["peer", key, "remove"]
                undo += peer_args(live.peers[key])
                summary.append(f"peer {persisted.peers[key].name or key} removed")
        for peer in desired.peers:
            current = live.peers.get(peer.public_key)
            if peer_matches(peer, current, persisted.peers.get(peer.public_key)):
                continue
            args += peer_args(peer)
            undo += ["peer", peer.public_key, "remove"] if current is None else peer_args(current)
            summary.append(f"peer {peer.name or peer.public_key} {'added' if current is None else 'changed'}")
    return args, undo, summary


# ---- ip ---------------------------------------------------------------------------------------
def address_lines(desired, live_addresses, owned_addresses, interface):
    """(lines, undo) adding the desired addresses and removing the ones we added before that are no longer wanted."""
    lines, undo = [], []
    for address in owned_addresses:
        if address in live_addresses and address not in desired.addresses:
            lines.append(f"address del {address} dev {interface}")
            undo.append(f"address add {address} dev {interface}")
    for address in desired.addresses:
        if address not in live_addresses:
            lines.append(f"address add {address} dev {interface}" + (" nodad" if family_of(address) == "ipv6" else ""))
            undo.append(f"address del {address} dev {interface}")
    return lines, undo


def internet_lines(internet, interface, family):
    """wg-quick's default route through the tunnel, as ``ip -batch`` lines of one family."""
    table, priority, default = internet.table, internet.priority, DEFAULTS[family]
    lines = [f"route replace {default} dev {interface} table {table}"]
    if not internet.fail_open:
        lines.append(f"route replace unreachable {default} metric {UNREACHABLE_METRIC} table {table}")
    lines.append(f"rule add table main suppress_prefixlength 0 priority {priority - 1}")
    lines.append(f"rule add not fwmark {internet.fwmark} table {table} priority {priority}")
    return lines


def internet_undo_lines(internet, family):
    return [f"rule del priority {internet.priority}", f"rule del priority {internet.priority - 1}",
            f"route flush table {internet.table}"]


def internet_changes(wanted, previous, rules, routes_by_table, interface, family):
    """(lines, undo) of ``ip -batch`` for one family that turn the live rules and routes into the wanted internet
    route: ``previous`` (what the last run recorded) is removed when it is no longer wanted or its table, priority
    or mark changed; only what exists is removed and only what is missing is added."""
    wanted = wanted if wanted and family in wanted.families else None
    previous = previous if previous and family in previous.families else None
    by_priority = {rule.get("priority"): rule for rule in rules}
    lines, undo = [], []

    def rules_present(internet):
        mark_rule = by_priority.get(internet.priority) or {}
        suppress_rule = by_priority.get(internet.priority - 1) or {}
        mark = str(mark_rule.get("fwmark", "0"))
        return (mark_rule.get("table") == str(internet.table) and "not" in mark_rule
                and int(mark, 16 if mark.startswith("0x") else 10) == internet.fwmark,
                suppress_rule.get("table") == "main" and suppress_rule.get("suppress_prefixlen") == 0)

    removed_tables = set()
    if previous and (wanted is None or (previous.table, previous.priority, previous.fwmark)
                     != (wanted.table, wanted.priority, wanted.fwmark)):
        mark_present, suppress_present = rules_present(previous)
        if mark_present:
            lines.append(f"rule del priority {previous.priority}")
            by_priority.pop(previous.priority, None)
        if suppress_present:
            lines.append(f"rule del priority {previous.priority - 1}")
            by_priority.pop(previous.priority - 1, None)
        if routes_by_table.get(previous.table):
            lines.append(f"route flush table {previous.table}")
            removed_tables.add(previous.table)
        undo += internet_lines(previous, interface, family)
    if wanted:
        routes = [] if wanted.table in removed_tables else routes_by_table.get(wanted.table, [])
        mark_present, suppress_present = rules_present(wanted)
        default = DEFAULTS[family]
        if not any(route.get("dst") == "default" and route.get("dev") == interface and not route.get("type")
                   for route in routes):
            lines.append(f"route replace {default} dev {interface} table {wanted.table}")
        has_unreachable = any(route.get("type") == "unreachable" and route.get("dst") == "default" for route in routes)
        if not wanted.fail_open and not has_unreachable:
            lines.append(f"route replace unreachable {default} metric {UNREACHABLE_METRIC} table {wanted.table}")
        if wanted.fail_open and has_unreachable:
            lines.append(f"route del unreachable {default} metric {UNREACHABLE_METRIC} table {wanted.table}")
        if not suppress_present:
            lines.append(f"rule add table main suppress_prefixlength 0 priority {wanted.priority - 1}")
        if not mark_present:
            lines.append(f"rule add not fwmark {wanted.fwmark} table {wanted.table} priority {wanted.priority}")
        undo = internet_undo_lines(wanted, family) + undo
    return (lines, undo) if lines else ([], [])


def family_flag(family):
    return "-4" if family == "ipv4" else "-6"


# ---- the state as the user sees it (diff) ------------------------------------------------------
def state_text(exists, addresses, listen_port, fwmark, peers, internet=None):
    if not exists:
        return ""
    lines = [f"address {address}" for address in addresses]
    if listen_port:
        lines.append(f"listen-port {listen_port}")
    if fwmark:
        lines.append(f"fwmark {fwmark}")
    if internet:
        lines.append(f"internet-route table {internet.table} fwmark {internet.fwmark} "
                     f"{'fail-open' if internet.fail_open else 'fail-closed'} {' '.join(internet.families)}")
    for peer in sorted(peers, key=lambda item: item.public_key):
        lines.append(" ".join(["peer", peer.public_key] + ([f"({peer.name})"] if peer.name else [])
                              + ["allowed-ips", ",".join(peer.allowed_ips) or "(none)"]
                              + (["endpoint", peer.endpoint] if peer.endpoint else [])
                              + (["keepalive", str(peer.persistent_keepalive)] if peer.persistent_keepalive else [])))
    return "\n".join(lines) + "\n"
