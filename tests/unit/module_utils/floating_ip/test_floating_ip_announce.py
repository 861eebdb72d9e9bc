# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""floating_ip announcements: gratuitous ARP and unsolicited neighbour advertisement frames, byte by byte."""

from __future__ import annotations

import ipaddress
import struct

from ansible_collections.netkit.egress.plugins.module_utils._floating_ip import announce as fip
from ansible_collections.netkit.egress.plugins.module_utils._floating_ip.model import FloatingIP

A = ipaddress.ip_address  # the independent oracle of the packed bytes
# ``ip -j addr show`` of links of several types: only Ethernet-like ones get announcements.
IP_ADDR_JSON = [
    {"ifname": "lo", "link_type": "loopback", "address": "00:00:00:00:00:00", "addr_info": []},
    {"ifname": "eth0", "link_type": "ether", "address": "02:00:00:00:00:01", "addr_info": []},
    {"ifname": "wg0", "link_type": "none", "addr_info": []},
    {"ifname": "eth1", "link_type": "ether", "address": "02:00:00:00:00:02", "addr_info": []},
    {"ifname": "eth2", "link_type": "ether", "address": "02:00:00:00:00:03", "addr_info": []},
]
OURS = FloatingIP("192.168.1.100", "eth0", 24)


# ---- announcement frames -----------------------------------------------------------------------
MAC = "02:00:00:00:00:01"


def test_gratuitous_arp_request_and_reply():
    request, reply = fip.announcement_frames(OURS, MAC)
    for frame, operation, target_mac in ((request, 1, b"\x00" * 6), (reply, 2, b"\xff" * 6)):
        assert len(frame) == 60
        assert frame[:6] == b"\xff" * 6 and frame[6:12] == fip.parse_mac(MAC)
        assert struct.unpack("!H", frame[12:14])[0] == 0x0806
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = struct.unpack("!HHBBH6s4s6s4s", frame[14:42])
        assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, operation)
        assert sha == fip.parse_mac(MAC) and tha == target_mac
        assert spa == tpa == A("192.168.1.100").packed


def test_unsolicited_neighbour_advertisement():
    address = A("2001:db8:1::100")
    (frame,) = fip.announcement_frames(FloatingIP(str(address), "eth0", 64), MAC)
    assert frame[:6] == bytes.fromhex("333300000001") and frame[6:12] == fip.parse_mac(MAC)
    assert struct.unpack("!H", frame[12:14])[0] == 0x86DD
    version_flow, length, next_header, hop_limit = struct.unpack("!IHBB", frame[14:22])
    assert (version_flow >> 28, length, next_header, hop_limit) == (6, 32, 58, 255)
    assert frame[22:38] == address.packed and frame[38:54] == A("ff02::1").packed
    icmp = frame[54:]
    assert len(icmp) == length
    icmp_type, code, _checksum, flags = struct.unpack("!BBHI", icmp[:8])
    assert (icmp_type, code) == (136, 0)
    assert flags == 0x20000000, "override set, solicited and router clear"
    assert icmp[8:24] == address.packed
    assert icmp[24:] == b"\x02\x01" + fip.parse_mac(MAC)
    pseudo = address.packed + A("ff02::1").packed + struct.pack("!I3xB", length, 58)
    assert fip._checksum(pseudo + icmp) == 0, "checksum verifies"


def test_router_flag_for_forwarding_hosts():
    (frame,) = fip.unsolicited_na_frames(fip.parse_mac(MAC), "2001:db8::1", router=True)
    assert struct.unpack("!I", frame[58:62])[0] == 0xA0000000


def test_link_macs_only_ethernet():
    assert fip.link_macs(IP_ADDR_JSON) == {"eth0": "02:00:00:00:00:01", "eth1": "02:00:00:00:00:02",
                                           "eth2": "02:00:00:00:00:03"}
