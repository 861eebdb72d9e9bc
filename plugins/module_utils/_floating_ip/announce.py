# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Announcement frames of floating IPs, pure: gratuitous ARP (IPv4) and unsolicited neighbour
advertisements (IPv6), built with the standard library only.

Standard library only, and no import of the collection: the molecule lab loads this file by its path to
announce its gateway's addresses with the same frames. Addresses are valid canonical texts.
"""

from __future__ import annotations

import socket
import struct

ETH_BROADCAST = b"\xff" * 6
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ALL_NODES = socket.inet_pton(socket.AF_INET6, "ff02::1")
ICMPV6_NEIGHBOR_ADVERTISEMENT = 136
MIN_ETHERNET_FRAME = 60


def packed(address):
    """The network-order bytes of a valid address text."""
    return socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)


def parse_mac(text):
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"{text!r} is not a MAC address")
    return bytes(int(part, 16) for part in parts)


def link_macs(ip_addr_json):
    """Interface -> MAC address for Ethernet-like links of ``ip -j addr show``."""
    return {link["ifname"]: link["address"] for link in ip_addr_json
            if link.get("link_type") == "ether" and link.get("address")}


def gratuitous_arp_frames(mac, address):
    """An ARP request and an ARP reply announcing ``address`` at ``mac`` (like ``arping -U`` and
    ``arping -A``): some neighbours only update their cache from one of the two."""
    frames = []
    address_bytes = packed(address)
    for operation in (1, 2):
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, operation, mac, address_bytes,
                          ETH_BROADCAST if operation == 2 else b"\x00" * 6, address_bytes)
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
    address_bytes = packed(address)
    flags = (0x80000000 if router else 0) | 0x20000000
    option = struct.pack("!BB6s", 2, 1, mac)
    body = struct.pack("!I16s", flags, address_bytes) + option
    length = 4 + len(body)
    pseudo = address_bytes + ALL_NODES + struct.pack("!I3xB", length, 58)
    checksum = _checksum(pseudo + struct.pack("!BBH", ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, 0) + body)
    icmp = struct.pack("!BBH", ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, checksum) + body
    ipv6 = struct.pack("!IHBB16s16s", 6 << 28, length, 58, 255, address_bytes, ALL_NODES)
    destination_mac = b"\x33\x33" + ALL_NODES[-4:]
    return [destination_mac + mac + struct.pack("!H", ETH_P_IPV6) + ipv6 + icmp]


def announcement_frames(item, mac_text, router=False):
    """The frames that announce floating IP ``item`` (anything with ``.address``) at ``mac_text``."""
    mac = parse_mac(mac_text)
    if ":" not in item.address:
        return gratuitous_arp_frames(mac, item.address)
    return unsolicited_na_frames(mac, item.address, router)
