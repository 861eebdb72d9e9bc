# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The desired state of one WireGuard interface, validated (pure, standard library only).

Every value that ends up in a command line or in the persisted wg-quick config (which wg-quick reads with
bash) passes a strict check here first, so nothing a user writes can inject a command or a config line.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Optional, Tuple

from ansible_collections.netkit.egress.plugins.module_utils._net import (
    InputError, as_list, cidr_list, cidr_of, family_of, parse_address, parse_cidr, validate_interface, validate_name)

DEFAULT_CONFIG_DIR = "/etc/wireguard"
IMPLEMENTATIONS = ("auto", "kernel", "wireguard-go")
_HOSTNAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
_SAFE_PATH = re.compile(r"/[A-Za-z0-9_./-]{1,4095}")
_UINT32 = (1 << 32) - 1


@dataclass(frozen=True)
class Peer:
    public_key: str
    allowed_ips: Tuple[str, ...]          # canonical CIDR texts, sorted, IPv4 first
    endpoint: Optional[str] = None        # canonical host:port, [v6]:port
    persistent_keepalive: int = 0         # 0: off
    name: str = ""                        # a label for the persisted config and the result, never a key


@dataclass(frozen=True)
class InternetRoute:
    """wg-quick's policy routing for a default route through the tunnel: everything not marked with
    ``fwmark`` (the tunnel's own UDP) looks up ``table`` (default dev IF) after the main table without
    its default route; fail-closed adds an unreachable default below it, so traffic never falls back to
    the underlay's default route."""
    families: Tuple[str, ...]
    table: int
    fwmark: int
    priority: int
    fail_open: bool


@dataclass(frozen=True)
class Desired:
    interface: str
    state: str
    addresses: Tuple[str, ...] = ()       # interface addresses with prefix (10.100.0.11/24), one per family
    listen_port: Optional[int] = None
    fwmark: int = 0
    private_key_file: str = ""
    config_path: str = ""
    peers: Optional[Tuple[Peer, ...]] = None   # None: leave peers as they are
    implementation: str = "auto"
    forwarding: bool = False
    internet: Optional[InternetRoute] = None

    @property
    def peers_by_key(self):
        return {peer.public_key: peer for peer in self.peers or ()}


# ---- single values ----------------------------------------------------------------------------
def validate_key(value, field):
    """A WireGuard key: base64 of 32 bytes (44 characters ending in '=')."""
    if not isinstance(value, str) or len(value) != 44 or not value.endswith("="):
        raise InputError(field, value, "is not a WireGuard key (base64 of 32 bytes, 44 characters)")
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        raise InputError(field, value, "is not a WireGuard key (base64 of 32 bytes, 44 characters)") from None
    # wg also refuses a non-canonical last character (its two spare bits set).
    if len(raw) != 32 or base64.b64encode(raw).decode() != value:
        raise InputError(field, value, "is not a WireGuard key (base64 of 32 bytes, 44 characters)")
    return value


def validate_port(value, field, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value), 10)
        except ValueError:
            raise InputError(field, value, "is not a port number (1-65535)") from None
    if not (0 if allow_zero else 1) <= value <= 65535:
        raise InputError(field, value, "is not a port number (1-65535)")
    return value


def validate_uint(value, field, low, high, what):
    if isinstance(value, bool):
        raise InputError(field, value, f"is not {what} ({low}-{high})")
    try:
        number = int(str(value), 10)
    except ValueError:
        raise InputError(field, value, f"is not {what} ({low}-{high})") from None
    if not low <= number <= high:
        raise InputError(field, value, f"is not {what} ({low}-{high})")
    return number


def split_endpoint(value, field, default_port=None):
    """(host, port) of ``host:port``, ``[v6]:port``, or of a bare host/address when ``default_port`` is given."""
    if not isinstance(value, str) or not value or value != value.strip():
        raise InputError(field, value, "is not an endpoint (host:port or [IPv6]:port)")
    host, port = value, None
    if value.startswith("["):
        closing = value.find("]")
        if closing < 0 or value[closing + 1:closing + 2] not in ("", ":"):
            raise InputError(field, value, "is not an endpoint (host:port or [IPv6]:port)")
        host, rest = value[1:closing], value[closing + 1:]
        port = rest[1:] if rest else None
        try:
            host = parse_address(host, field, family="ipv6", strip=False)
        except InputError:
            raise InputError(field, value, "is not an endpoint (the part in brackets is not an IPv6 address)") from None
    elif value.count(":") == 1:
        host, port = value.split(":")
    elif ":" in value:
        raise InputError(field, value, "is not an endpoint (write an IPv6 address in brackets: [2001:db8::1]:51820)")
    if port is None:
        if default_port is None:
            raise InputError(field, value, "is not an endpoint (the port is missing: host:port)")
        port = default_port
    port = validate_port(port, field)
    if ":" not in host:
        try:
            host = parse_address(host, field, family="ipv4", strip=False)
        except InputError:
            if not _HOSTNAME.fullmatch(host) or host.replace(".", "").isdigit():
                raise InputError(field, value, "is not an endpoint (not an IP address or host name)") from None
            host = host.rstrip(".").lower()
    return host, port


def join_endpoint(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def normalise_endpoint(value, field, default_port=None):
    return join_endpoint(*split_endpoint(value, field, default_port))


def endpoint_is_literal(endpoint):
    host = endpoint.rsplit(":", 1)[0].strip("[]")
    return ":" in host or host.replace(".", "").isdigit()


def interface_address(value, field):
    """Canonical ``address/prefix`` of an interface address (host bits kept; a bare address is a host)."""
    if not isinstance(value, str):
        raise InputError(field, value, "is not an interface address (address/prefix)")
    address, _slash, prefix = value.partition("/")
    canonical = parse_address(address, field, strip=False)
    cidr = parse_cidr(value, field)
    return f"{canonical}/{cidr.prefix if prefix else cidr.bits}"


def validate_path(value, field):
    if not isinstance(value, str) or not _SAFE_PATH.fullmatch(value) or "/../" in value + "/" or value.endswith("/"):
        raise InputError(field, value, "is not an absolute path of A-Z a-z 0-9 _ . / - characters")
    return value


def sort_cidrs(texts):
    return tuple(sorted(texts, key=lambda text: (family_of(text) == "ipv6", cidr_of(text).first, cidr_of(text).prefix)))


# ---- peers ------------------------------------------------------------------------------------
def validate_peer(value, field):
    if not isinstance(value, dict):
        raise InputError(field, value, "is not a peer (a dict with public_key, allowed_ips, endpoint, ...)")
    unknown = sorted(set(value) - {"public_key", "allowed_ips", "endpoint", "persistent_keepalive", "name"})
    if unknown:
        raise InputError(f"{field}.{unknown[0]}", problem="is not a peer option (public_key, allowed_ips, endpoint, "
                                                          "persistent_keepalive, name)")
    if "public_key" not in value:
        raise InputError(f"{field}.public_key", problem="is required")
    public_key = validate_key(value["public_key"], f"{field}.public_key")
    allowed = sort_cidrs(cidr_list(value.get("allowed_ips"), f"{field}.allowed_ips"))
    endpoint = value.get("endpoint")
    if endpoint not in (None, ""):
        endpoint = normalise_endpoint(endpoint, f"{field}.endpoint")
    else:
        endpoint = None
    keepalive = value.get("persistent_keepalive")
    keepalive = 0 if keepalive in (None, "", "off") else validate_uint(
        keepalive, f"{field}.persistent_keepalive", 0, 65535, "a keepalive interval in seconds")
    name = value.get("name") or ""
    if name:
        validate_name(name, f"{field}.name")
    return Peer(public_key, allowed, endpoint, keepalive, name)


def validate_peers(value, field="peers"):
    """Peers with unique keys and AllowedIPs that no two peers share: WireGuard would silently move a shared
    range to the peer set last. A default route (/0) may contain other peers' ranges (longest prefix wins,
    as with wg-quick's 0.0.0.0/0), but only one peer may hold it."""
    peers, seen_keys, claims = [], {}, []
    for index, item in enumerate(as_list(value, field)):
        peer = validate_peer(item, f"{field}[{index}]")
        if peer.public_key in seen_keys:
            raise InputError(f"{field}[{index}].public_key", peer.public_key,
                             f"is already the key of {field}[{seen_keys[peer.public_key]}]")
        seen_keys[peer.public_key] = index
        for position, text in enumerate(peer.allowed_ips):
            cidr = cidr_of(text)
            for other_index, other_position, other in claims:
                if cidr.overlaps(other) and not ((cidr.prefix == 0) != (other.prefix == 0)):
                    raise InputError(
                        f"{field}[{index}].allowed_ips[{position}]", text,
                        f"overlaps {field}[{other_index}].allowed_ips[{other_position}] {other.text} "
                        f"({describe_peer(peers[other_index], other_index, field)}); a range belongs to one peer")
            claims.append((index, position, cidr))
        peers.append(peer)
    return tuple(peers)


def describe_peer(peer, index, field="peers"):
    return f"peer {peer.name}" if peer.name else f"{field}[{index}] {peer.public_key[:8]}..."


# ---- the whole interface ----------------------------------------------------------------------
def validate(params):
    """Desired from the module's parameters; raises InputError naming the field."""
    interface = validate_interface(params.get("interface"), "interface")
    state = params.get("state") or "present"
    config_dir = validate_path(params.get("config_dir") or DEFAULT_CONFIG_DIR, "config_dir")
    config_path = f"{config_dir}/{interface}.conf"
    key_file = params.get("private_key_file") or f"{config_dir}/{interface}.key"
    key_file = validate_path(key_file, "private_key_file")
    if state == "absent":
        return Desired(interface, state, private_key_file=key_file, config_path=config_path)
    addresses, families = [], {}
    for index, item in enumerate(as_list(params.get("addresses"), "addresses")):
        field = f"addresses[{index}]"
        text = interface_address(item, field)
        family = family_of(text)
        if family in families:
            raise InputError(field, item, f"is a second {family.replace('ip', 'IP')} address "
                                          f"(addresses[{families[family]}]); give one address per family")
        families[family] = index
        addresses.append(text)
    listen_port = params.get("listen_port")
    if listen_port is not None:
        listen_port = validate_port(listen_port, "listen_port")
    fwmark = validate_uint(params.get("fwmark") or 0, "fwmark", 0, _UINT32, "a firewall mark")
    peers = params.get("peers")
    peers = None if peers is None else validate_peers(peers)
    implementation = params.get("implementation") or "auto"
    if implementation not in IMPLEMENTATIONS:
        raise InputError("implementation", implementation, f"is not one of {', '.join(IMPLEMENTATIONS)}")
    internet = validate_internet(params.get("internet_route"), peers, fwmark) if peers is not None else None
    if internet and not fwmark:
        fwmark = internet.fwmark
    return Desired(interface, state, tuple(sort_cidrs(addresses)), listen_port, fwmark, key_file, config_path,
                   peers, implementation, bool(params.get("forwarding")), internet)


def validate_internet(value, peers, fwmark):
    if not value:
        return None
    field = "internet_route"
    if not isinstance(value, dict):
        raise InputError(field, value, "is not a dict (table, fwmark, priority, fail_open)")
    unknown = sorted(set(value) - {"table", "fwmark", "priority", "fail_open", "enabled"})
    if unknown:
        raise InputError(f"{field}.{unknown[0]}", problem="is not an option (table, fwmark, priority, fail_open)")
    if value.get("enabled") is False:
        return None
    table = validate_uint(value.get("table") or 51820, f"{field}.table", 1, _UINT32 - 1, "a route table number")
    if table in (253, 254, 255):
        raise InputError(f"{field}.table", table, "is the kernel's default, main or local table; use a table of its own")
    mark = validate_uint(value.get("fwmark") or fwmark or 51820, f"{field}.fwmark", 1, _UINT32, "a firewall mark")
    if fwmark and mark != fwmark:
        raise InputError(f"{field}.fwmark", mark, f"differs from fwmark {fwmark}; the tunnel's own packets carry fwmark")
    priority = validate_uint(value.get("priority") or 5000, f"{field}.priority", 1, 32765, "a rule priority")
    families = tuple(family for family, default in (("ipv4", "0.0.0.0/0"), ("ipv6", "::/0"))
                     if any(default in peer.allowed_ips for peer in peers or ()))
    if not families:
        raise InputError(field, problem="needs a peer whose allowed_ips hold 0.0.0.0/0 or ::/0 (the internet gateway)")
    return InternetRoute(families, table, mark, priority, bool(value.get("fail_open")))
