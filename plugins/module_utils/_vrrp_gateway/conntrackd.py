# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""conntrackd.conf of a VRRP gateway (pure): FTFW state sync over a dedicated interface.

One peer: UDP unicast to it. Several: a multicast group on the sync interface (conntrackd's unicast
channel has a single destination). Only the gateways' own and sync addresses are ignored, never a
client's: the entries to sync are exactly the forwarded (SNATed) connections.
"""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils import _boot

HEADER = _boot.header("vrrp_gateway")
PORT = 3780
MULTICAST_GROUP = "225.0.0.50"


def _channel(sync):
    if len(sync.peers) == 1:
        return ["  UDP {\n",
                f"    IPv4_address {sync.address}\n",
                f"    IPv4_Destination_Address {sync.peers[0]}\n",
                f"    Port {PORT}\n",
                f"    Interface {sync.interface}\n",
                "    SndSocketBuffer 1249280\n",
                "    RcvSocketBuffer 1249280\n",
                "    Checksum on\n",
                "  }\n"]
    return ["  Multicast {\n",
            f"    IPv4_address {MULTICAST_GROUP}\n",
            f"    Group {PORT}\n",
            f"    IPv4_interface {sync.address}\n",
            f"    Interface {sync.interface}\n",
            "    SndSocketBuffer 1249280\n",
            "    RcvSocketBuffer 1249280\n",
            "    Checksum on\n",
            "  }\n"]


def render(gateway, paths):
    sync = gateway.conntrack
    out = [HEADER, "Sync {\n",
           "  Mode FTFW {\n",
           "    DisableExternalCache Off\n",
           "    CommitTimeout 1800\n",
           "    PurgeTimeout 5\n",
           "  }\n"]
    out += _channel(sync)
    out += ["}\n\n", "General {\n",
            "  HashSize 32768\n",
            "  HashLimit 131072\n",
            f"  LogFile {paths.run('conntrackd.log')}\n",
            "  Syslog off\n",
            f"  LockFile {paths.run('conntrackd.lock')}\n",
            "  UNIX {\n",
            f"    Path {paths.run('conntrackd.sock')}\n",
            "  }\n",
            "  NetlinkBufferSize 2097152\n",
            "  NetlinkBufferSizeMaxGrowth 8388608\n",
            "  Filter From Userspace {\n",
            "    Protocol Accept {\n      TCP\n      UDP\n      ICMP\n    }\n",
            "    Address Ignore {\n"]
    out += [f"      IPv4_address {address}\n" for address in sync.ignore]
    out += ["    }\n", "  }\n", "}\n"]
    return "".join(out)
