# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TCP throughput through a WireGuard tunnel (wireguard-go, userspace) beside plain veth forwarding.

    .venv/bin/python bench/wireguard.py [--seconds 5] [--reps 2]

Standalone, about a minute. Namespaces ``nkw<pid>-a``, ``-r``, ``-b``: a and b talk through the router r
(veth, plain forwarding); then the same path carries a WireGuard tunnel between a and b (wireguard-go, each
namespace with its own /run/wireguard as the netkit.egress.netns connection gives it) and iperf3 runs inside
it. Everything is removed afterwards, also on failure. One TCP stream, the first second omitted (slow start).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lab"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), ".venv", "collections"))

from netlab import Lab  # noqa: E402


def build(lab):
    for host in ("a", "r", "b"):
        lab.add_host(host, forwarding=host == "r")
    lab.link("a", "eth0", "r", "eth0")
    lab.link("r", "eth1", "b", "eth0")
    lab.addr("a", "eth0", "192.0.2.2/24")
    lab.addr("r", "eth0", "192.0.2.1/24")
    lab.addr("r", "eth1", "198.51.100.1/24")
    lab.addr("b", "eth0", "198.51.100.2/24")
    lab.route("a", "198.51.100.0/24", via="192.0.2.1")
    lab.route("b", "192.0.2.0/24", via="198.51.100.1")
    keys = {}
    for host, underlay, overlay, peer in (("a", "192.0.2.2", "10.99.0.1/24", "b"),
                                          ("b", "198.51.100.2", "10.99.0.2/24", "a")):
        lab.host_exec(host, ["wireguard-go", "wg0"])
        private = lab.host_exec(host, ["wg", "genkey"]).stdout.strip()
        keys[host] = lab.host_exec(host, ["wg", "pubkey"], data=private + "\n").stdout.strip()
        lab.host_exec(host, ["sh", "-c", "umask 077 && cat > /etc/wireguard/bench.key"], data=private + "\n")
        lab.host_exec(host, ["wg", "set", "wg0", "private-key", "/etc/wireguard/bench.key", "listen-port", "51820"])
        lab.sh(host, f"ip address add {overlay} dev wg0 && ip link set wg0 up")
    for host, peer, endpoint, allowed in (("a", "b", "198.51.100.2:51820", "10.99.0.2/32"),
                                          ("b", "a", "192.0.2.2:51820", "10.99.0.1/32")):
        lab.host_exec(host, ["wg", "set", "wg0", "peer", keys[peer], "endpoint", endpoint, "allowed-ips", allowed])


def iperf(lab, server_address, seconds):
    argv = ["iperf3", "-c", server_address, "-t", str(seconds), "-O", "1", "-J"]
    proc = lab.exec("a", argv, check=False, timeout=seconds + 30)
    report = json.loads(proc.stdout or "{}")
    return report.get("end", {}).get("sum_received", {}).get("bits_per_second", 0.0) / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--json", help="write the measurements ({path: [Gbit/s per repetition]}) to this file")
    args = parser.parse_args(argv)
    lab = Lab(f"nkw{os.getpid() % 100000}")
    lab.destroy()
    server = None
    try:
        build(lab)
        server = subprocess.Popen(["ip", "netns", "exec", lab.ns("b"), "iperf3", "-s"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        figures = {"plain veth forwarding (a -> r -> b)": [], "WireGuard tunnel, wireguard-go (same path)": []}
        for _rep in range(args.reps):
            figures["plain veth forwarding (a -> r -> b)"].append(iperf(lab, "198.51.100.2", args.seconds))
            figures["WireGuard tunnel, wireguard-go (same path)"].append(iperf(lab, "10.99.0.2", args.seconds))
        plain = statistics.median(figures["plain veth forwarding (a -> r -> b)"])
        print(f"{'path':48} {'TCP Gbit/s (median)':>20} {'runs':>24}")
        for label, values in figures.items():
            runs = ", ".join(f"{value:.2f}" for value in values)
            print(f"{label:48} {statistics.median(values):20.2f} {runs:>24}")
        tunnel = statistics.median(figures["WireGuard tunnel, wireguard-go (same path)"])
        print(f"tunnel / plain: {tunnel / plain:.3f}" if plain else "plain path measured 0")
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(figures, handle, indent=2)
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=5)
        lab.destroy()


if __name__ == "__main__":
    main()
