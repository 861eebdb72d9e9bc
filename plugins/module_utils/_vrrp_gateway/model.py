# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The VRRP gateway's desired configuration, validated (pure): module parameters and the host's addresses
in, one ``Gateway`` out. Every error names the parameter and the bad value."""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

from ansible_collections.netkit.egress.plugins.module_utils import _net as net

STATES = ("present", "absent", "gathered")
DRAIN_PRIORITY = 1
MIN_ADVERT_INTERVAL = 0.01
MAX_ADVERT_INTERVAL = 40.95  # VRRPv3 carries centiseconds in 12 bits


class Instance(NamedTuple):
    name: str
    address: str
    prefix_length: int
    interface: str
    vrid: int
    priority: int


class ConntrackSync(NamedTuple):
    interface: str
    address: str
    peers: Tuple[str, ...]
    ignore: Tuple[str, ...]


class Gateway(NamedTuple):
    instances: Tuple[Instance, ...]
    source_address: str
    peers: Tuple[str, ...]
    advert_interval: float
    garp_repeat: int
    garp_refresh: int
    track_interfaces: Tuple[str, ...]
    track_nft_table: str
    track_return_routes: int
    route_protocol: int
    conntrack: Optional[ConntrackSync]


class HostAddress(NamedTuple):
    interface: str
    address: str
    prefix_length: int


def host_addresses(ip_addr_json, floating=()):
    """Global IPv4 addresses of ``ip -j addr show``, without the floating IPs keepalived holds (secondary)."""
    found = []
    for link in ip_addr_json:
        for info in link.get("addr_info", []):
            if (info.get("family") == "inet" and info.get("scope", "global") == "global"
                    and not (info.get("secondary") and info.get("local") in floating)):
                found.append(HostAddress(link["ifname"], info["local"], int(info["prefixlen"])))
    return found


def instance_name(address):
    return "nk_" + address.replace(".", "_")


def _containing(address, addresses, interface=None):
    value = net.address_value(address)[1]
    best = None
    for item in addresses:
        if interface is not None and item.interface != interface:
            continue
        network = net.parse_cidr(f"{item.address}/{item.prefix_length}", "address")
        if network.first <= value <= network.last and (best is None or item.prefix_length > best.prefix_length):
            best = item
    return best


def _number(value, field, low, high, kind=int):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise net.InputError(field, value, f"is not a number ({low}-{high})") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise net.InputError(field, value, f"is out of range ({low}-{high})")
    return number


def _addresses(values, field):
    return tuple(net.unique(net.parse_address(value, f"{field}[{index}]", family="ipv4")
                            for index, value in enumerate(net.as_list(values, field))))


def _instances(params, on_host):
    floating = set()
    raw = net.as_list(params["instances"], "instances")
    instances, vrids = [], {}
    interface = params.get("interface")
    if interface is not None:
        net.validate_interface(interface, "interface")
    for index, entry in enumerate(raw):
        field = f"instances[{index}]"
        if not isinstance(entry, dict):
            raise net.InputError(field, entry, "is not a mapping with address, vrid and priority")
        unknown = sorted(set(entry) - {"address", "vrid", "priority"})
        if unknown:
            raise net.InputError(f"{field}.{unknown[0]}", problem="is not a known field (address, vrid, priority)")
        address = net.parse_address(entry.get("address"), f"{field}.address", family="ipv4")
        if address in floating:
            raise net.InputError(f"{field}.address", address, "is listed twice")
        floating.add(address)
        vrid = _number(entry.get("vrid"), f"{field}.vrid", 1, 255)
        if vrid in vrids:
            raise net.InputError(f"{field}.vrid", vrid, f"is also the vrid of {vrids[vrid]}")
        vrids[vrid] = address
        priority = DRAIN_PRIORITY if params.get("drain") else _number(entry.get("priority"), f"{field}.priority", 1, 254)
        owner = [item for item in on_host if item.address == address]
        if owner:
            raise net.InputError(f"{field}.address", address, f"is an address of {owner[0].interface} on this host "
                                 "(a node address is never a floating IP)")
        subnet = _containing(address, on_host, interface)
        if subnet is None:
            raise net.InputError(f"{field}.address", address, "is not inside the subnet of any interface "
                                 "on this host" + (f" ({interface})" if interface else "") + "; set interface")
        instances.append(Instance(instance_name(address), address, subnet.prefix_length, subnet.interface,
                                  vrid, priority))
    return tuple(instances)


def gateway(params, on_host):
    """The validated ``Gateway`` of the module parameters, given the host's own addresses."""
    instances = _instances(params, on_host)
    interfaces = sorted({item.interface for item in instances})
    if len(interfaces) > 1:
        raise net.InputError("instances", problem=f"floating IPs on several interfaces ({', '.join(interfaces)}) "
                                                  "need one vrrp_gateway per interface")
    source = params.get("source_address")
    if source is not None:
        source = net.parse_address(source, "source_address", family="ipv4")
        if not any(item.address == source for item in on_host):
            raise net.InputError("source_address", source, "is not an address of this host")
    elif instances:
        own = [item for item in on_host if item.interface == instances[0].interface
               and _containing(instances[0].address, [item])]
        if not own:
            raise net.InputError("source_address", problem=f"no address of {instances[0].interface} in the subnet "
                                                           f"of {instances[0].address}; set source_address")
        source = own[0].address
    peers = tuple(peer for peer in _addresses(params.get("unicast_peers"), "unicast_peers") if peer != source)
    advert = _number(params.get("advert_interval"), "advert_interval", MIN_ADVERT_INTERVAL, MAX_ADVERT_INTERVAL,
                     float)
    track_interfaces = tuple(net.validate_interface(name, f"track_interfaces[{index}]")
                             for index, name in enumerate(net.as_list(params.get("track_interfaces"),
                                                                      "track_interfaces")))
    table = params.get("track_nft_table") or ""
    if table and (len(table.split()) != 2 or table.split()[0] not in ("ip", "ip6", "inet")
                  or not net.NAME_PATTERN.fullmatch(table.split()[1])):
        raise net.InputError("track_nft_table", table, "is not 'FAMILY NAME' (family ip, ip6 or inet)")
    conntrack = None
    if params.get("conntrack_sync"):
        sync_interface = params.get("sync_interface")
        if not sync_interface:
            raise net.InputError("sync_interface", problem="is required with conntrack_sync")
        net.validate_interface(sync_interface, "sync_interface")
        own = [item.address for item in on_host if item.interface == sync_interface]
        if not own:
            raise net.InputError("sync_interface", sync_interface, "has no IPv4 address on this host")
        sync_peers = tuple(peer for peer in _addresses(params.get("sync_peers"), "sync_peers") if peer not in own)
        if not sync_peers:
            raise net.InputError("sync_peers", problem="needs the sync address of at least one other gateway")
        ignore = tuple(net.unique(["127.0.0.1", *own, source or own[0], *sync_peers, *peers]))
        conntrack = ConntrackSync(sync_interface, own[0], sync_peers, ignore)
    return Gateway(instances, source or "", peers, advert,
                   _number(params.get("garp_repeat"), "garp_repeat", 1, 255),
                   _number(params.get("garp_refresh"), "garp_refresh", 0, 3600),
                   track_interfaces, table,
                   _number(params.get("track_return_routes", 0), "track_return_routes", 0, 1000000),
                   _number(params.get("route_protocol", 201), "route_protocol", 1, 255), conntrack)
