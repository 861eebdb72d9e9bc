# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_egress_gateway.route_lookup answers exactly as the kernel's ``ip route get`` wherever it answers at all.

A namespace gets an awkward routing setup (metrics, a more specific route, host routes, blackhole /
unreachable / prohibit, multipath, throw into the default table, equal-metric duplicates, local and
anycast addresses, IPv6); then hundreds of addresses are looked up both ways.
"""

import ipaddress
import json
import random

from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.route_lookup import UNKNOWN, RouteLookup

V4_SETUP = [
    "ip route add default via 192.0.2.254",
    "ip route add 10.9.0.0/16 dev b0 metric 50",
    "ip route add 10.9.0.0/16 dev a0 metric 10",
    "ip route add 10.9.128.0/17 dev b0",
    "ip route add 10.99.1.1 dev b0",
    "ip route add blackhole 10.66.0.0/16",
    "ip route add unreachable 10.67.0.0/16",
    "ip route add prohibit 10.68.0.0/16",
    "ip route add 10.77.0.0/16 nexthop dev a0 nexthop dev b0",
    "ip route add throw 10.88.0.0/16",
    "ip route add 10.88.0.0/16 dev b0 table default",
    "ip route append 10.55.0.0/16 dev a0",
    "ip route append 10.55.0.0/16 dev b0",
]
V6_SETUP = [
    "ip -6 route add default via 2001:db8:a::fe",
    "ip -6 route add 2001:db8:9::/48 dev b0",
    "ip -6 route add 2001:db8:9:8000::/49 dev a0 metric 10",
    "ip -6 route add blackhole 2001:db8:66::/48",
]


def build(lab):
    lab.add_host("gw", forwarding=True)
    lab.add_host("pa")
    lab.add_host("pb")
    lab.link("gw", "a0", "pa", "eth0")
    lab.link("gw", "b0", "pb", "eth0")
    lab.exec("gw", ["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"],
             check=False)
    for ifname, v4, v6 in (("a0", "192.0.2.1/24", "2001:db8:a::1/64"), ("b0", "198.51.100.1/24", "2001:db8:b::1/64")):
        lab.addr("gw", ifname, v4)
        lab.exec("gw", ["ip", "-6", "addr", "add", v6, "dev", ifname, "nodad"])
    for command in V4_SETUP + V6_SETUP:
        lab.sh("gw", command)


def probe_addresses(seed=7):
    chooser = random.Random(seed)
    fixed = ["192.0.2.1", "192.0.2.255", "192.0.2.0", "198.51.100.1", "127.0.0.1", "10.9.0.1", "10.9.200.1",
             "10.99.1.1", "10.99.1.2", "10.66.0.1", "10.67.0.1", "10.68.0.1", "10.77.0.1", "10.88.0.1", "10.55.0.1",
             "8.8.8.8", "2001:db8:a::1", "2001:db8:a::", "2001:db8:b::1", "2001:db8:9::1", "2001:db8:9:8000::1",
             "2001:db8:66::1", "2001:db8:ffff::1", "::1", "fe80::1"]
    v4 = [str(ipaddress.IPv4Address(chooser.choice([0x0A000000, 0xC0000200, 0xC6336400]) + chooser.randrange(1 << 24)))
          for _probe in range(300)]
    v6 = [str(ipaddress.IPv6Address(0x20010DB8 << 96 | chooser.randrange(1 << 80) << 16)) for _probe in range(150)]
    return fixed + v4 + v6


def kernel_answers(lab, addresses):
    """{address: dev or None} from ``ip -j route get``, one process per address (the reference)."""
    answers = {}
    for address in addresses:
        proc = lab.exec("gw", ["ip", "-j", "route", "get", address], check=False)
        routes = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else []
        answers[address] = routes[0].get("dev") if routes else None
    return answers


def lookups(lab):
    result = {}
    for family, flag in (("ipv4", "-4"), ("ipv6", "-6")):
        rules = json.loads(lab.exec("gw", ["ip", "-j", flag, "rule", "show"]).stdout)
        routes = json.loads(lab.exec("gw", ["ip", "-j", flag, "route", "show", "table", "all"]).stdout)
        result[family] = RouteLookup(rules, routes, family)
    return result


def family(address):
    return "ipv6" if ":" in address else "ipv4"


def test_lookup_agrees_with_ip_route_get(lab):
    build(lab)
    addresses = probe_addresses()
    by_family = lookups(lab)
    kernel = kernel_answers(lab, addresses)
    decided = {}
    for address in addresses:
        answer = by_family[family(address)].lookup(address)
        if answer != UNKNOWN:
            decided[address] = answer["dev"] if answer else None
    disagreements = {address: (dev, kernel[address]) for address, dev in decided.items() if dev != kernel[address]}
    assert not disagreements, f"lookup vs kernel: {disagreements}"
    # The lookup must really answer the common cases itself, and leave the unmodelled ones to the kernel.
    assert decided["10.9.0.1"] == "a0" and decided["10.9.200.1"] == "b0" and decided["10.99.1.1"] == "b0"
    assert decided["192.0.2.1"] == "lo" and decided["2001:db8:a::1"] == "lo"
    assert decided["10.66.0.1"] is None and decided["10.88.0.1"] == "b0" and decided["8.8.8.8"] == "a0"
    assert decided["2001:db8:9::1"] == "b0" and decided["2001:db8:9:8000::1"] == "a0"
    for unmodelled in ("10.77.0.1", "10.55.0.1", "192.0.2.255", "2001:db8:66::1"):
        assert unmodelled not in decided, unmodelled
    assert len(decided) >= 0.9 * len(addresses)


def test_policy_rules_leave_every_answer_to_the_kernel(lab):
    build(lab)
    lab.sh("gw", "ip rule add fwmark 0x10 lookup 100 priority 1000")
    by_family = lookups(lab)
    assert by_family["ipv4"].lookup("10.9.0.1") == UNKNOWN
    assert by_family["ipv6"].lookup("2001:db8:9::1") != UNKNOWN  # only IPv4 has the extra rule
