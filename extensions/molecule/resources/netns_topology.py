# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The molecule scenarios' test machines: network namespaces built with the lab toolkit (lab/netlab.py).

    netns_topology.py up egress_gateway PREFIX   the mesh of lab/lab.py (sw, gw, m1, m2, srv) + whoami on srv
    netns_topology.py up egress_nat PREFIX       the cluster of lab/cluster_lab.py + whoami on ext and ext2
    netns_topology.py fail PREFIX HOST           the machine HOST dies (its namespace is deleted)
    netns_topology.py replace-gateway PREFIX     egress_gateway: a new, empty gw machine with gw's addresses
    netns_topology.py whoami PREFIX CLIENT SERVER_ADDRESS
                                                 print the source address the server saw ("none": no answer)
    netns_topology.py down PREFIX                remove every namespace PREFIX-* (and what runs inside)
    netns_topology.py announce IFNAME ADDRESS... (run inside a namespace) gratuitous ARP / unsolicited NA

Everything lives in namespaces named PREFIX-*; nothing outside them changes. The whoami servers are
detached (they outlive this command) and bounded: they exit after --lifetime seconds, and `down`
kills them with their namespace.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO_ROOT, "lab"))

import cluster_lab  # noqa: E402
import lab as mesh_lab  # noqa: E402
import netlab  # noqa: E402

WHOAMI_PORT = 8080
SERVERS = {"egress_gateway": ("srv",), "egress_nat": ("ext", "ext2")}


def start_whoami(lab, host, lifetime):
    """A whoami server in ``host`` that outlives this process (no pipes to us), bounded by ``lifetime``."""
    subprocess.Popen(  # pylint: disable=consider-using-with
        ["ip", "netns", "exec", lab.ns(host), sys.executable, netlab.WHOAMI_SERVER,
         "--port", str(WHOAMI_PORT), "--lifetime", str(lifetime)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if lab.sh(host, f"ss -Hltn 'sport = :{WHOAMI_PORT}'", check=False).stdout.strip():
            return
        time.sleep(0.05)
    raise netlab.LabError(f"whoami server in {lab.ns(host)} did not start")


def stop_processes(lab, host):
    for pid in netlab.run(["ip", "netns", "pids", lab.ns(host)], check=False).stdout.split():
        netlab.run(["kill", pid], check=False)


def up(lab, topology, lifetime):
    lab.destroy()
    if topology == "egress_gateway":
        mesh_lab.build(lab)
    else:
        cluster_lab.build(lab)
        # build() started servers whose output is piped to this short-lived process: replace them.
        for host in SERVERS[topology]:
            stop_processes(lab, host)
    for host in SERVERS[topology]:
        start_whoami(lab, host, lifetime)
    print(" ".join(lab.ns(host) for host in lab.hosts))


def replace_gateway(lab):
    """A new gw machine cabled like the old one: same addresses, no firewall state, forwarding off."""
    lab.add_host("gw")
    lab.link("sw", "pgwnew", "gw", mesh_lab.NETWORK_INTERFACE)
    lab.sh("sw", "ip link set pgwnew master br0")
    for cidr in mesh_lab.GATEWAY[mesh_lab.NETWORK_INTERFACE]:
        lab.addr("gw", mesh_lab.NETWORK_INTERFACE, cidr)
    # The old gw's uplink veth died with it, and took srv's end along.
    lab.link("gw", "eth1", "srv", "eth0")
    for cidr in mesh_lab.GATEWAY["eth1"]:
        lab.addr("gw", "eth1", cidr)
    for cidr in mesh_lab.SERVER:
        lab.addr("srv", "eth0", cidr)
    # Like a booting machine's network scripts, tell the neighbours where the addresses live now;
    # otherwise the members keep the dead machine's MAC address until their neighbour entries expire.
    addresses = [cidr.split("/", maxsplit=1)[0] for cidr in mesh_lab.GATEWAY[mesh_lab.NETWORK_INTERFACE]]
    lab.exec("gw", [sys.executable, os.path.abspath(__file__), "announce", mesh_lab.NETWORK_INTERFACE, *addresses])


def announce(interface, addresses):
    """Send a gratuitous ARP / unsolicited neighbour advertisement for each address out of ``interface``
    (of the current namespace), with the frames the collection's floating_ip module sends."""
    path = os.path.join(REPO_ROOT, "plugins", "module_utils", "_floating_ip", "announce.py")
    spec = importlib.util.spec_from_file_location("netkit_floating_ip_frames", path)
    frames_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(frames_module)
    link = json.loads(netlab.run(["ip", "-j", "link", "show", "dev", interface]).stdout)[0]
    mac = frames_module.parse_mac(link["address"])
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw_socket:
        raw_socket.bind((interface, 0))
        for text in addresses:
            address = str(ipaddress.ip_address(text))
            frames = (frames_module.gratuitous_arp_frames(mac, address) if ":" not in address
                      else frames_module.unsolicited_na_frames(mac, address, router=True))
            for frame in frames:
                raw_socket.send(frame)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up")
    up_parser.add_argument("topology", choices=sorted(SERVERS))
    up_parser.add_argument("prefix")
    up_parser.add_argument("--lifetime", type=int, default=1800, help="seconds the whoami servers live")
    fail_parser = sub.add_parser("fail")
    fail_parser.add_argument("prefix")
    fail_parser.add_argument("host")
    sub.add_parser("replace-gateway").add_argument("prefix")
    whoami_parser = sub.add_parser("whoami")
    whoami_parser.add_argument("prefix")
    whoami_parser.add_argument("client")
    whoami_parser.add_argument("server")
    sub.add_parser("down").add_argument("prefix")
    announce_parser = sub.add_parser("announce", help="(inside a namespace) announce addresses on an interface")
    announce_parser.add_argument("interface")
    announce_parser.add_argument("addresses", nargs="+")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: network namespaces need CAP_SYS_ADMIN")
    if args.command == "announce":
        announce(args.interface, args.addresses)
        return 0
    # Interface names are built from the prefix (15 characters at most): keep it short and plain.
    if not 1 <= len(args.prefix) <= 7 or not args.prefix.isalnum():
        parser.error(f"prefix: {args.prefix!r} must be 1-7 letters or digits")
    lab = netlab.Lab(args.prefix)
    if args.command == "up":
        up(lab, args.topology, args.lifetime)
    elif args.command == "fail":
        lab.destroy_host(args.host)
    elif args.command == "replace-gateway":
        replace_gateway(lab)
    elif args.command == "whoami":
        print(lab.whoami(args.client, args.server, WHOAMI_PORT, timeout=2.0) or "none")
    else:
        lab.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
