# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readers of a WireGuard interface's live state and of our persisted config (pure: text in, values out).

``wg show IF dump`` prints the interface's private key in its first line: the reader drops that field at
once, so no value returned from here ever holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from ansible_collections.netkit.egress.plugins.module_utils._net import normalise_cidr
from ansible_collections.netkit.egress.plugins.module_utils._wireguard.model import InternetRoute, Peer, sort_cidrs

MARKER = "# Managed by netkit.egress (netkit.egress.wireguard); changes here are overwritten."
KEY_GENERATED = "# netkit.egress: private key generated on this host"
INTERNET_MARKER = "# netkit.egress: internet_route"


@dataclass
class Live:
    exists: bool = False
    kind: Optional[str] = None             # wireguard (kernel), tun (wireguard-go) or another link kind
    up: bool = False
    public_key: Optional[str] = None
    listen_port: Optional[int] = None
    fwmark: int = 0
    peers: Dict[str, Peer] = field(default_factory=dict)
    addresses: Tuple[str, ...] = ()


@dataclass
class Persisted:
    """What the last run recorded in the config it wrote: the peers, addresses and options it owns."""
    ours: bool = False
    key_generated: bool = False
    addresses: Tuple[str, ...] = ()
    peers: Dict[str, Peer] = field(default_factory=dict)
    internet: Optional[InternetRoute] = None
    forwarding: bool = False


def internet_marker(internet):
    return (f"{INTERNET_MARKER} families={','.join(internet.families)} table={internet.table} "
            f"fwmark={internet.fwmark} priority={internet.priority} fail_open={int(internet.fail_open)}")


def parse_internet_marker(line):
    values = dict(item.split("=", 1) for item in line[len(INTERNET_MARKER):].split() if "=" in item)
    try:
        return InternetRoute(tuple(family for family in values["families"].split(",") if family in ("ipv4", "ipv6")),
                             int(values["table"]), int(values["fwmark"]), int(values["priority"]),
                             values.get("fail_open") == "1")
    except (KeyError, ValueError):
        return None


def parse_dump(text):
    """(public_key, listen_port, fwmark, {public_key: Peer}) of ``wg show IF dump``."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None, None, 0, {}
    first = lines[0].split("\t")
    # first[0] is the private key: deliberately never kept.
    public_key = first[1] if len(first) > 1 and first[1] != "(none)" else None
    listen_port = int(first[2]) if len(first) > 2 and first[2].isdigit() and first[2] != "0" else None
    fwmark = int(first[3], 0) if len(first) > 3 and first[3] not in ("off", "") else 0
    peers = {}
    for line in lines[1:]:
        columns = line.split("\t")
        if len(columns) < 8:
            continue
        key, _preshared, endpoint, allowed, _handshake, _rx, _tx, keepalive = columns[:8]
        allowed_ips = () if allowed in ("(none)", "") else sort_cidrs(
            normalise_cidr(text, "allowed_ips") for text in allowed.split(","))
        peers[key] = Peer(key, allowed_ips, None if endpoint == "(none)" else endpoint,
                          0 if keepalive in ("off", "") else int(keepalive))
    return public_key, listen_port, fwmark, peers


def parse_link(links):
    """(kind, up) of ``ip -j -d link show dev IF``."""
    if not links:
        return None, False
    link = links[0]
    kind = (link.get("linkinfo") or {}).get("info_kind")
    return kind, "UP" in (link.get("flags") or [])


def parse_addresses(entries):
    """Global addresses (address/prefix) of ``ip -j address show dev IF``; link-local ones are the kernel's."""
    found = []
    for entry in entries or []:
        for info in entry.get("addr_info", []):
            if info.get("scope") == "link" or "local" not in info:
                continue
            found.append(f"{info['local']}/{info['prefixlen']}")
    return sort_cidrs(found)


def parse_config(text):
    """The persisted wg-quick config we wrote (None text: none written)."""
    if text is None:
        return Persisted()
    ours = text.startswith(MARKER)
    persisted = Persisted(ours=ours, key_generated=KEY_GENERATED in text)
    section, peer = None, None

    def finish():
        if peer and peer.get("PublicKey"):
            allowed = [item.strip() for item in peer.get("AllowedIPs", "").split(",") if item.strip()]
            persisted.peers[peer["PublicKey"]] = Peer(
                peer["PublicKey"], sort_cidrs(allowed), peer.get("Endpoint"),
                int(peer.get("PersistentKeepalive", "0") or 0), peer.get("name", ""))

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# name:") and section == "Peer":
            peer["name"] = line.split(":", 1)[1].strip()
            continue
        if line.startswith(INTERNET_MARKER):
            persisted.internet = parse_internet_marker(line)
            continue
        if not line or line.startswith("#"):
            continue
        if line in ("[Interface]", "[Peer]"):
            finish()
            section, peer = line[1:-1], ({} if line == "[Peer]" else None)
            continue
        key, _eq, value = (part.strip() for part in line.partition("="))
        if section == "Interface" and key == "PostUp" and value.startswith("sysctl") and "forward" in value:
            persisted.forwarding = True
        if section == "Interface" and key == "Address":
            persisted.addresses = sort_cidrs(item.strip() for item in value.split(",") if item.strip())
        elif section == "Peer":
            # base64 keys end in '=': partition at the first '=' keeps them whole.
            peer[key] = value
    finish()
    return persisted
