# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Floating IPs, pure: validate the request, read the host's addresses, plan adds and removes,
render ``ip -batch`` lines, and build the announcement frames (gratuitous ARP, unsolicited NA).

Ownership: an address is ours when the state file records it on an interface AND the host has it
there. Anything else on the host is foreign and never removed.
"""

from __future__ import annotations

import ipaddress
import json
import re
import struct
from collections import namedtuple

INTERFACE_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")
IFNAMSIZ_CHARS = 15
LABEL_SUFFIX = ":nk"
STATE_VERSION = 1
STATES = ("present", "absent", "exact", "gathered")

# One address we hold (or want to hold): what ``ip addr add`` needs.
FloatingIP = namedtuple("FloatingIP", "address interface prefix_length")
# One address configured on the host, as ``ip -j addr show`` reports it.
HostAddress = namedtuple("HostAddress", "address interface prefix_length scope")


class FloatingIPError(ValueError):
    """Invalid request; the message names the parameter."""


# ---- request validation ---------------------------------------------------------------------
def parse_addresses(values):
    addresses, seen = [], {}
    for index, value in enumerate(values or []):
        where = f"addresses[{index}]"
        if not isinstance(value, str) or "/" in value:
            raise FloatingIPError(f"{where}: {value!r} is not a valid IP address (give the address "
                                  f"without prefix; use prefix_length to override the subnet's)")
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            raise FloatingIPError(f"{where}: {value!r} is not a valid IP address") from None
        if address in seen:
            raise FloatingIPError(f"{where}: {address} is listed twice (also addresses[{seen[address]}])")
        seen[address] = index
        addresses.append(address)
    return addresses


def validate_interface(name, field="interface"):
    if name is not None and (not INTERFACE_NAME.fullmatch(name) or name in (".", "..")):
        raise FloatingIPError(f"{field}: {name!r} is not a valid interface name "
                              f"(1-15 characters of letters, digits, '_', '.', '@', '-')")
    return name


def validate_prefix_length(prefix_length, addresses):
    if prefix_length is None:
        return None
    for index, address in enumerate(addresses):
        if not 0 <= prefix_length <= address.max_prefixlen:
            raise FloatingIPError(f"prefix_length: {prefix_length} is not valid for addresses[{index}] "
                                  f"{address} (0-{address.max_prefixlen})")
    return prefix_length


# ---- host state -----------------------------------------------------------------------------
def host_addresses(ip_addr_json):
    """Every IPv4/IPv6 address of ``ip -j addr show``."""
    found = []
    for link in ip_addr_json:
        for info in link.get("addr_info", []):
            if info.get("family") in ("inet", "inet6") and "local" in info:
                found.append(HostAddress(ipaddress.ip_address(info["local"]), link["ifname"],
                                         int(info["prefixlen"]), info.get("scope", "global")))
    return found


def link_macs(ip_addr_json):
    """Interface -> MAC address for Ethernet-like links."""
    return {link["ifname"]: link["address"] for link in ip_addr_json
            if link.get("link_type") == "ether" and link.get("address")}


def parse_state(text, path):
    """Records of the state file: FloatingIP tuples. A missing file means no records."""
    if not text or not text.strip():
        return []
    try:
        document = json.loads(text)
        return [FloatingIP(ipaddress.ip_address(entry["address"]), entry["interface"],
                           int(entry["prefix_length"])) for entry in document["addresses"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise FloatingIPError(f"state_file: {path} is not a floating_ip state file ({exc}); move it "
                              f"away if it is not ours") from None


def render_state(held):
    document = {"version": STATE_VERSION, "addresses": [as_dict(item) for item in sort_held(held)]}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def owned(records, on_host):
    """The recorded addresses the host really has on the recorded interface (with its real prefix)."""
    by_key = {(item.address, item.interface): item for item in on_host}
    held = []
    for record in records:
        present = by_key.get((record.address, record.interface))
        if present is not None:
            held.append(FloatingIP(record.address, record.interface, present.prefix_length))
    return held


# ---- desired state --------------------------------------------------------------------------
def _containing(address, on_host, interface=None):
    """Host addresses (not ours, global scope) whose subnet contains ``address``, longest prefix first."""
    candidates = [item for item in on_host
                  if item.address.version == address.version and item.scope == "global"
                  and (interface is None or item.interface == interface)
                  and address in ipaddress.ip_interface(f"{item.address}/{item.prefix_length}").network]
    return sorted(candidates, key=lambda item: -item.prefix_length)


def resolve(index, address, on_host, held, interface=None, prefix_length=None):
    """Where ``address`` goes: the interface whose subnet contains it (or the override) and the
    subnet's prefix (or the override). Refuses addresses the host has and we did not add."""
    where = f"addresses[{index}]"
    held_addresses = {item.address for item in held}
    foreign = [item for item in on_host if item.address == address and item.address not in held_addresses]
    if foreign:
        raise FloatingIPError(f"{where}: {address} is already configured on {foreign[0].interface} and was "
                              f"not added by floating_ip (a node address is never a floating IP)")
    others = [item for item in on_host if item.address not in held_addresses]
    containing = _containing(address, others, interface)
    if interface is None:
        if not containing:
            raise FloatingIPError(f"{where}: {address} is not inside the subnet of any interface on this "
                                  f"host; set interface (and prefix_length)")
        best = [item for item in containing if item.prefix_length == containing[0].prefix_length]
        interfaces = sorted({item.interface for item in best})
        if len(interfaces) > 1:
            raise FloatingIPError(f"{where}: {address} is inside subnets of several interfaces "
                                  f"({', '.join(interfaces)}); set interface")
        interface = interfaces[0]
    if prefix_length is None:
        prefix_length = containing[0].prefix_length if containing else address.max_prefixlen
    return FloatingIP(address, interface, prefix_length)


def plan(state, requested, desired, held):
    """(to_remove, to_add) for the state. ``desired`` is resolved for present/exact, ``requested``
    is the plain address list (absent)."""
    if state == "gathered":
        return [], []
    if state == "absent":
        wanted_gone = set(requested)
        return [item for item in held if item.address in wanted_gone], []
    held_set = set(held)
    held_by_address = {item.address: item for item in held}
    to_add = [item for item in desired if item not in held_set]
    # An address we hold elsewhere (other interface or prefix) moves: remove the old one first.
    to_remove = [held_by_address[item.address] for item in to_add if item.address in held_by_address]
    if state == "exact":
        desired_addresses = {item.address for item in desired}
        to_remove += [item for item in held if item.address not in desired_addresses]
    return to_remove, to_add


def after(held, to_remove, to_add):
    removed = set(to_remove)
    return sort_held([item for item in held if item not in removed] + list(to_add))


def sort_held(items):
    return sorted(items, key=lambda item: (item.address.version, int(item.address), item.interface))


def as_dict(item):
    return {"address": str(item.address), "interface": item.interface, "prefix_length": item.prefix_length}


# ---- commands -------------------------------------------------------------------------------
def label_for(interface):
    """IPv4 address label ``<ifname>:nk``, cut to the kernel's 15 characters."""
    return interface[:IFNAMSIZ_CHARS - len(LABEL_SUFFIX)] + LABEL_SUFFIX


def add_command(item):
    # noprefixroute: no second subnet route, so the node's own address stays the source of its traffic.
    words = ["address", "add", f"{item.address}/{item.prefix_length}", "dev", item.interface, "noprefixroute"]
    if item.address.version == 4:
        words += ["label", label_for(item.interface)]
    else:
        # Deprecated (preferred lifetime 0): Linux compares IPv6 source candidates only up to their
        # prefix length, so a fresh floating IP would otherwise become the node's own source address.
        words += ["nodad", "preferred_lft", "0"]
    return " ".join(words)


def remove_command(item):
    return " ".join(["address", "del", f"{item.address}/{item.prefix_length}", "dev", item.interface])


def batch_commands(to_remove, to_add):
    return [remove_command(item) for item in to_remove] + [add_command(item) for item in to_add]


def undo_commands(to_remove, to_add):
    """``ip -force -batch`` lines that give back the addresses held before a batch that stopped half way."""
    return [remove_command(item) for item in to_add] + [add_command(item) for item in to_remove]


# ---- announcements --------------------------------------------------------------------------
ETH_BROADCAST = b"\xff" * 6
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ICMPV6_NEIGHBOR_ADVERTISEMENT = 136
MIN_ETHERNET_FRAME = 60


def parse_mac(text):
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"{text!r} is not a MAC address")
    return bytes(int(part, 16) for part in parts)


def gratuitous_arp_frames(mac, address):
    """An ARP request and an ARP reply announcing ``address`` at ``mac`` (like ``arping -U`` and
    ``arping -A``): some neighbours only update their cache from one of the two."""
    frames = []
    for operation in (1, 2):
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, operation, mac, address.packed,
                          ETH_BROADCAST if operation == 2 else b"\x00" * 6, address.packed)
        frame = ETH_BROADCAST + mac + struct.pack("!H", ETH_P_ARP) + arp
        frames.append(frame.ljust(MIN_ETHERNET_FRAME, b"\x00"))
    return frames


def _checksum(data):
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def unsolicited_na_frames(mac, address, router=False):
    """An unsolicited neighbour advertisement (override flag, target link-layer address option) to
    all nodes, sent from ``address`` itself (RFC 4861 7.2.6)."""
    flags = (0x80000000 if router else 0) | 0x20000000
    option = struct.pack("!BB6s", 2, 1, mac)
    body = struct.pack("!I16s", flags, address.packed) + option
    length = 4 + len(body)
    pseudo = address.packed + ALL_NODES.packed + struct.pack("!I3xB", length, 58)
    checksum = _checksum(pseudo + struct.pack("!BBH", ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, 0) + body)
    icmp = struct.pack("!BBH", ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, checksum) + body
    ipv6 = struct.pack("!IHBB16s16s", 6 << 28, length, 58, 255, address.packed, ALL_NODES.packed)
    destination_mac = b"\x33\x33" + ALL_NODES.packed[-4:]
    return [destination_mac + mac + struct.pack("!H", ETH_P_IPV6) + ipv6 + icmp]


def announcement_frames(item, mac_text, router=False):
    mac = parse_mac(mac_text)
    if item.address.version == 4:
        return gratuitous_arp_frames(mac, item.address)
    return unsolicited_na_frames(mac, item.address, router)
