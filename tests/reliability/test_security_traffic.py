# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 4, item 8: segmentation holds under real traffic.

Member m1 holds one address of network A (10.100.0.2, fd00:100::2) and one of network B
(10.100.0.130, fd00:100::8000:0:0:2); the server holds one address in A's range (192.168.50.10,
2001:db8:50::10), one in B's (192.168.50.200, 2001:db8:50:0:8000::10) and one outside every range
(192.168.60.10). NAT is off, so the server sees who connects. Counters in an nft table of the server
(``inet count``, hooked before everything) count every SYN that arrives per (source network,
destination): A->B and B->A must stay 0 while A->A and B->B get through. On a docker-like gateway
(FORWARD policy DROP) nothing outside the declared ranges is forwarded either (0 packets); on a host
whose FORWARD policy accepts, forwarding to other destinations is that host's own policy (the
collection adds no accept and no NAT for them).
"""

import json
import sys

import pytest

import harness
from scenarios import egress_gateway_args
from test_coexistence import seed

PORT = 8080
ATTEMPTS = 3
A4, B4, A6, B6 = "10.100.0.2", "10.100.0.130", "fd00:100::2", "fd00:100::8000:0:0:2"
SERVER = {"a4": "192.168.50.10", "b4": "192.168.50.200", "a6": "2001:db8:50::10", "b6": "2001:db8:50:0:8000::10",
          "outside": "192.168.60.10"}
COUNTERS = """\
table inet count {
  chain input {
    type filter hook prerouting priority raw - 10; policy accept;
    tcp dport 8080 tcp flags syn ip saddr 10.100.0.0/25 ip daddr 192.168.50.0/25 counter comment "a-a4"
    tcp dport 8080 tcp flags syn ip saddr 10.100.0.128/25 ip daddr 192.168.50.128/25 counter comment "b-b4"
    tcp dport 8080 tcp flags syn ip saddr 10.100.0.128/25 ip daddr 192.168.50.0/25 counter comment "b-a4"
    tcp dport 8080 tcp flags syn ip saddr 10.100.0.0/25 ip daddr 192.168.50.128/25 counter comment "a-b4"
    tcp dport 8080 tcp flags syn ip6 saddr fd00:100::/65 ip6 daddr 2001:db8:50::/65 counter comment "a-a6"
    tcp dport 8080 tcp flags syn ip6 saddr fd00:100:0:0:8000::/65 ip6 daddr 2001:db8:50:0:8000::/65 counter comment "b-b6"
    tcp dport 8080 tcp flags syn ip6 saddr fd00:100:0:0:8000::/65 ip6 daddr 2001:db8:50::/65 counter comment "b-a6"
    tcp dport 8080 tcp flags syn ip6 saddr fd00:100::/65 ip6 daddr 2001:db8:50:0:8000::/65 counter comment "a-b6"
    tcp dport 8080 tcp flags syn ip daddr 192.168.60.10 counter comment "outside"
  }
}
"""
CONNECT = """
import socket, sys
source, destination, attempts = sys.argv[1], sys.argv[2], int(sys.argv[3])
ok = 0
for _ in range(attempts):
    try:
        with socket.create_connection((destination, 8080), timeout=0.4, source_address=(source, 0)) as s:
            ok += bool(s.recv(256))
    except OSError:
        pass
print(ok)
"""


def build(lab):
    lab.addr("m1", "eth0", B4 + "/24")
    lab.addr("m1", "eth0", B6 + "/64")
    for address in ("192.168.50.200/24", "2001:db8:50:0:8000::10/64", "192.168.60.10/24"):
        lab.addr("srv", "eth0", address)
    lab.route("m1", "192.168.60.0/24", via="10.100.0.1")
    lab.route("gw", "192.168.60.0/24", via="192.168.50.10")
    lab.route("srv", "10.100.0.0/24", via="192.168.50.1")
    lab.route("srv", "fd00:100::/64", via="2001:db8:50::1")
    lab.exec("srv", ["nft", "-f", "-"], data=COUNTERS)
    lab.start_whoami("srv", PORT)


def connect(lab, source, destination):
    return int(lab.exec("m1", [sys.executable, "-c", CONNECT, source, destination, str(ATTEMPTS)],
                        timeout=ATTEMPTS * 2 + 5).stdout.strip() or 0)


def counters(lab):
    objects = json.loads(lab.exec("srv", ["nft", "-j", "list", "table", "inet", "count"]).stdout)["nftables"]
    found = {}
    for entry in objects:
        rule = entry.get("rule")
        if rule:
            found[rule["comment"]] = next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
    return found


@pytest.mark.parametrize("host_kind", ["plain host, backend nftables", "docker-like host, backend auto"])
def test_segmentation_under_traffic(topo, workers, host_kind):
    lab = topo
    build(lab)
    docker = host_kind.startswith("docker")
    if docker:
        seed(lab, "gw")
    args = egress_gateway_args("auto" if docker else "nftables", nat=False)
    result = workers("gw").run("egress_gateway", args)
    assert result.get("changed") and not result.get("failed"), result
    answered = {
        "a-a4": connect(lab, A4, SERVER["a4"]), "b-b4": connect(lab, B4, SERVER["b4"]),
        "b-a4": connect(lab, B4, SERVER["a4"]), "a-b4": connect(lab, A4, SERVER["b4"]),
        "a-a6": connect(lab, A6, SERVER["a6"]), "b-b6": connect(lab, B6, SERVER["b6"]),
        "b-a6": connect(lab, B6, SERVER["a6"]), "a-b6": connect(lab, A6, SERVER["b6"]),
        "outside": connect(lab, A4, SERVER["outside"]),
    }
    seen = counters(lab)
    allowed = ("a-a4", "b-b4", "a-a6", "b-b6")
    blocked = ("b-a4", "a-b4", "b-a6", "a-b6") + (("outside",) if docker else ())
    ok_allowed = all(answered[name] == ATTEMPTS and seen[name] >= ATTEMPTS for name in allowed)
    ok_blocked = all(answered[name] == 0 and seen[name] == 0 for name in blocked)
    harness.record("8 segmentation under traffic (packets across networks = 0)", host_kind,
                   len(allowed) + len(blocked), sum(answered[n] == ATTEMPTS and seen[n] >= ATTEMPTS for n in allowed)
                   + sum(answered[n] == 0 and seen[n] == 0 for n in blocked))
    assert ok_allowed, (answered, seen)
    assert ok_blocked, (answered, seen)
