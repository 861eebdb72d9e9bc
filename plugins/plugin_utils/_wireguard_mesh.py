# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WireGuard mesh planner, controller side (pure): inventory -> every member's interface and peers.

Every member peers with every other. A peer's AllowedIPs on every member are: its overlay addresses, the
egress ranges it serves (when it is an egress gateway; minus its excluded ranges), the addresses of its
external clients (when it is an ingress node) and the default routes of the first internet gateway (an egress
gateway whose ranges hold 0.0.0.0/0 or ::/0; members with ``wireguard_internet_gateway`` also get the policy
routing that sends their internet traffic there, fail-closed). The same function validates the
inventory before anything changes (called without public keys) and plans with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ansible_collections.netkit.egress.plugins.module_utils._net import (
    FAMILIES, InputError, as_list, cidr_list, cidr_of, family_of, subtract_families, validate_interface, validate_name)
from ansible_collections.netkit.egress.plugins.module_utils._wireguard.model import (
    interface_address, normalise_endpoint, sort_cidrs, validate_key, validate_port, validate_uint)

DEFAULT_PORT = 51820
DEFAULT_INTERFACE = "wg0"
DEFAULT_ROUTES = {"ipv4": "0.0.0.0/0", "ipv6": "::/0"}
EXT_CLIENT_KEEPALIVE = 25


@dataclass
class Member:
    name: str
    interface: str
    addresses: Tuple[str, ...]              # interface addresses with prefix
    endpoint: Optional[str]
    listen_port: int
    keepalive: int
    public_key: Optional[str]
    ranges: Tuple[str, ...] = ()            # egress ranges without default routes
    internet_families: Tuple[str, ...] = ()  # default routes among its egress ranges
    ingress: bool = False
    ext_clients: List[dict] = field(default_factory=list)
    internet_gateway: bool = False
    fail_open: bool = False

    @property
    def host_cidrs(self):
        return tuple(f"{text.split('/')[0]}/{32 if family_of(text) == 'ipv4' else 128}" for text in self.addresses)


def _host_cidr(address):
    return f"{address.split('/')[0]}/{32 if family_of(address) == 'ipv4' else 128}"


def _bool(value, field_name):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.lower() in ("true", "yes", "1")
    if value in (0, 1):
        return bool(value)
    raise InputError(field_name, value, "is not a boolean")


def _member(name, host_vars, egress_hosts, public_keys):
    where = f"{name}: "
    interface = validate_interface(host_vars.get("wireguard_interface") or DEFAULT_INTERFACE,
                                   where + "wireguard_interface")
    raw_addresses = host_vars.get("wireguard_address")
    if isinstance(raw_addresses, str):
        raw_addresses = [raw_addresses]
    raw_addresses = as_list(raw_addresses, where + "wireguard_address")
    if not raw_addresses:
        raise InputError(where + "wireguard_address", problem="is required (the member's overlay address, CIDR)")
    addresses, families = [], set()
    for index, item in enumerate(raw_addresses):
        field_name = where + (f"wireguard_address[{index}]" if len(raw_addresses) > 1 else "wireguard_address")
        text = interface_address(item, field_name)
        if cidr_of(text).prefix == cidr_of(text).bits:
            raise InputError(field_name, item, "needs the overlay network's prefix length (10.100.0.11/24)")
        if family_of(text) in families:
            raise InputError(field_name, item, "is a second address of one family (one per family)")
        families.add(family_of(text))
        addresses.append(text)
    port = validate_port(host_vars.get("wireguard_listen_port") or DEFAULT_PORT, where + "wireguard_listen_port")
    endpoint = host_vars.get("wireguard_endpoint")
    endpoint = normalise_endpoint(endpoint, where + "wireguard_endpoint", default_port=port) if endpoint else None
    keepalive = validate_uint(host_vars.get("wireguard_persistent_keepalive") or 0,
                              where + "wireguard_persistent_keepalive", 0, 65535, "a keepalive interval in seconds")
    public_key = public_keys.get(name) or host_vars.get("wireguard_mesh_public_key")
    if public_key:
        validate_key(public_key, where + "wireguard_mesh_public_key")
    member = Member(name, interface, tuple(sort_cidrs(addresses)), endpoint, port, keepalive, public_key or None)
    if name in egress_hosts and (host_vars.get("egress_gateway_state") or "present") == "present":
        ranges = list(cidr_list(host_vars.get("egress_gateway_ranges"), where + "egress_gateway_ranges"))
        for index, network in enumerate(as_list(host_vars.get("egress_gateway_networks"), where + "egress_gateway_networks")):
            if isinstance(network, dict):
                ranges += cidr_list(network.get("ranges"), f"{where}egress_gateway_networks[{index}].ranges")
        excluded = cidr_list(host_vars.get("egress_gateway_excluded_ranges"), where + "egress_gateway_excluded_ranges")
        defaults = [text for text in ranges if cidr_of(text).prefix == 0]
        member.internet_families = tuple(family_of(text) for text in sort_cidrs(set(defaults)))
        member.ranges = tuple(subtract_families([text for text in ranges if text not in defaults], excluded))
    member.ingress = _bool(host_vars.get("wireguard_ingress", False), where + "wireguard_ingress")
    member.internet_gateway = _bool(host_vars.get("wireguard_internet_gateway", False),
                                    where + "wireguard_internet_gateway")
    member.fail_open = _bool(host_vars.get("wireguard_fail_open", False), where + "wireguard_fail_open")
    clients = as_list(host_vars.get("wireguard_ext_clients"), where + "wireguard_ext_clients")
    if clients and not member.ingress:
        raise InputError(where + "wireguard_ext_clients", problem="needs wireguard_ingress: true on this host")
    for index, client in enumerate(clients):
        field_name = f"{where}wireguard_ext_clients[{index}]"
        if not isinstance(client, dict):
            raise InputError(field_name, client, "is not a client ({name, address})")
        unknown = sorted(set(client) - {"name", "address"})
        if unknown:
            raise InputError(f"{field_name}.{unknown[0]}", problem="is not a client option (name, address)")
        client_name = validate_name(client.get("name"), field_name + ".name")
        raw = client.get("address")
        raw = [raw] if isinstance(raw, str) else as_list(raw, field_name + ".address")
        if not raw:
            raise InputError(field_name + ".address", problem="is required (the client's overlay address)")
        client_addresses = []
        for position, item in enumerate(raw):
            text = cidr_list([item], f"{field_name}.address")[0]
            if cidr_of(text).prefix != cidr_of(text).bits:
                raise InputError(f"{field_name}.address", item, "is not one address (a /32 or /128)")
            client_addresses.append(text)
        if not member.endpoint:
            raise InputError(where + "wireguard_endpoint", problem="is required on an ingress node with ext clients "
                                                                   "(their only way in)")
        member.ext_clients.append({"name": client_name, "addresses": tuple(sort_cidrs(client_addresses)),
                                   "field": field_name})
    return member


def _networks(members):
    """{family: the overlay network} shared by every member; a member outside it is an error."""
    networks = {}
    for member in members:
        for text in member.addresses:
            family = family_of(text)
            network = cidr_of(text)
            if family not in networks:
                networks[family] = (network, member.name)
            elif networks[family][0] != network:
                raise InputError(f"{member.name}: wireguard_address", text,
                                 f"is not in the mesh's network {networks[family][0].text} "
                                 f"(from {networks[family][1]})")
    return {family: value[0] for family, value in networks.items()}


def _check_claims(members, networks):
    """No address, client or range claimed twice: WireGuard would hand it to whichever peer was set last."""
    claims = []

    def claim(text, owner):
        cidr = cidr_of(text)
        for other_text, other_owner in claims:
            other = cidr_of(other_text)
            if cidr.overlaps(other):
                raise InputError(owner, text, f"overlaps {other_text} of {other_owner}; a range belongs to one peer")
        claims.append((text, owner))

    for member in members:
        for text in member.host_cidrs:
            claim(text, f"{member.name}: wireguard_address")
        for client in member.ext_clients:
            for text in client["addresses"]:
                network = networks.get(family_of(text))
                if network is None or cidr_of(text) not in network:
                    raise InputError(client["field"] + ".address", text,
                                     "is not inside the mesh's network" + (f" {network.text}" if network else ""))
                claim(text, client["field"] + f" ({client['name']})")
    for member in members:
        for text in member.ranges:
            for family, network in networks.items():
                if cidr_of(text).overlaps(network):
                    raise InputError(f"{member.name}: egress_gateway_ranges", text,
                                     f"overlaps the mesh's own network {network.text}")
            claim(text, f"{member.name}: egress_gateway_ranges")


def _internet_gateways(members):
    return {family: [member for member in members if family in member.internet_families] for family in FAMILIES}


def plan(member_names, hostvars, egress_hosts=(), public_keys=None, ext_client_keys=None):
    """{"hosts": {name: module parameters and client configs}, "pending": [...]} for every member.

    ``public_keys``: {member: public key} known so far, else each member's ``wireguard_mesh_public_key`` (missing:
    that member is not yet a peer of anyone); ``ext_client_keys``: {client name: public key}, else each ingress
    node's ``wireguard_mesh_ext_client_keys``."""
    public_keys = dict(public_keys or {})
    names = list(dict.fromkeys(member_names))
    # The role publishes each ingress node's clients' public keys in its hostvars.
    collected = {}
    for name in names:
        collected.update((hostvars.get(name) or {}).get("wireguard_mesh_ext_client_keys") or {})
    ext_client_keys = dict(collected, **dict(ext_client_keys or {}))
    members, pending = [], []
    seen_clients = {}
    for name in names:
        host_vars = hostvars.get(name) or {}
        if (host_vars.get("wireguard_state") or "present") != "present":
            continue
        member = _member(name, host_vars, set(egress_hosts), public_keys)
        for client in member.ext_clients:
            if client["name"] in seen_clients:
                raise InputError(client["field"] + ".name", client["name"],
                                 f"is already a client of {seen_clients[client['name']]} (names are unique in the mesh)")
            seen_clients[client["name"]] = name
        members.append(member)
    networks = _networks(members)
    _check_claims(members, networks)
    gateways = _internet_gateways(members)
    for member in members:
        if member.internet_gateway:
            wanted = [family_of(text) for text in member.addresses]
            if not any(gateways[family] and gateways[family][0] is not member for family in wanted) \
                    and not member.fail_open:
                raise InputError(f"{member.name}: wireguard_internet_gateway", True,
                                 "needs an egress gateway in the mesh whose egress_gateway_ranges hold 0.0.0.0/0 "
                                 "or ::/0 (or wireguard_fail_open: true)")
    hosts = {}
    for member in members:
        peers, internet_families = [], []
        for other in members:
            if other is member:
                continue
            if not other.public_key:
                pending.append(f"{member.name}: peer {other.name} (its public key is not known yet)")
                continue
            allowed = list(other.host_cidrs) + list(other.ranges)
            for client in other.ext_clients:
                allowed += client["addresses"]
            # The default routes of the first internet gateway, on every member: egress_client routes every
            # member to every range (a default route too, at its metric), and a route into the tunnel without
            # the range in AllowedIPs would be a black hole. Which members prefer it over their own default
            # route is the policy routing of wireguard_internet_gateway.
            for family, candidates in gateways.items():
                usable = [gateway for gateway in candidates if gateway is not member]
                if usable and usable[0] is other:
                    allowed.append(DEFAULT_ROUTES[family])
                    if any(family_of(address) == family for address in member.addresses):
                        internet_families.append(family)
            peers.append({"name": other.name, "public_key": other.public_key, "endpoint": other.endpoint,
                          "allowed_ips": list(sort_cidrs(set(allowed))),
                          "persistent_keepalive": member.keepalive})
        for client in member.ext_clients:
            key = ext_client_keys.get(client["name"])
            if not key:
                pending.append(f"{member.name}: ext client {client['name']} (its key is not generated yet)")
                continue
            validate_key(key, client["field"] + " public key")
            peers.append({"name": f"ext-{client['name']}", "public_key": key, "endpoint": None,
                          "allowed_ips": list(client["addresses"]), "persistent_keepalive": 0})
        internet_route = None
        if member.internet_gateway and internet_families:
            internet_route = {"table": DEFAULT_PORT, "fwmark": DEFAULT_PORT, "priority": 5000,
                              "fail_open": member.fail_open}
        hosts[member.name] = {
            "interface": member.interface, "addresses": list(member.addresses), "listen_port": member.listen_port,
            "peers": peers, "forwarding": member.ingress, "internet_route": internet_route,
            "ext_clients": _ext_client_configs(member, members, networks),
        }
    return {"hosts": hosts, "pending": pending, "networks": [network.text for network in networks.values()]}


def _ext_client_configs(ingress, members, networks):
    """What each external client's wg-quick config holds, except its private key (added on the controller)."""
    if not ingress.ext_clients:
        return []
    ranges = list(networks_text(networks))
    for member in members:
        ranges += member.ranges
    configs = []
    for client in ingress.ext_clients:
        configs.append({"name": client["name"], "addresses": list(client["addresses"]),
                        "peer_public_key": ingress.public_key, "endpoint": ingress.endpoint,
                        "allowed_ips": list(sort_cidrs(set(ranges))), "persistent_keepalive": EXT_CLIENT_KEEPALIVE})
    return configs


def networks_text(networks):
    return [networks[family].text for family in FAMILIES if family in networks]


def ext_client_config_text(config, private_key):
    """The wg-quick config of one external client (it holds the client's private key: write it 0600)."""
    lines = [f"# netkit.egress external client {config['name']} (wg-quick config; it holds a private key)",
             "[Interface]", f"PrivateKey = {private_key}", f"Address = {', '.join(config['addresses'])}", "",
             "[Peer]", f"PublicKey = {config['peer_public_key']}"]
    if config.get("endpoint"):
        lines.append(f"Endpoint = {config['endpoint']}")
    lines += [f"AllowedIPs = {', '.join(config['allowed_ips'])}",
              f"PersistentKeepalive = {config['persistent_keepalive']}"]
    return "\n".join(lines) + "\n"
