# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fast paths taken for 10,000 ranges give the same answers as the slow, obvious ones.

``_net.collapse`` / ``normalise_cidr`` / ``sorted_addresses`` against ``ipaddress``; ``route_lookup``'s reading of
rules and tables, and its bisection against its walk (the walk's answers are checked against the kernel in
tests/integration/test_route_lookup.py).
"""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.netkit.egress.plugins.module_utils._net import (
    InputError, collapse, normalise_cidr, sorted_addresses)
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.route_lookup import (
    UNKNOWN, RouteLookup, default_route_device, table_order)

IPV4_NETWORKS = st.builds(lambda value, prefix: str(ipaddress.IPv4Network((value, prefix), strict=False)),
                          st.integers(0, 2**32 - 1), st.integers(0, 32))
IPV6_NETWORKS = st.builds(lambda value, prefix: str(ipaddress.IPv6Network((value, prefix), strict=False)),
                          st.integers(0, 2**128 - 1), st.integers(0, 128))
# Small address space so that overlaps and neighbours are common.
CLUSTERED_IPV4 = st.builds(lambda value, prefix: str(ipaddress.IPv4Network((0x0A000000 + value, prefix), strict=False)),
                           st.integers(0, 4095), st.integers(20, 32))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(CLUSTERED_IPV4, IPV4_NETWORKS), max_size=40))
def test_collapse_equals_ipaddress_ipv4(cidrs):
    expected = tuple(str(n) for n in ipaddress.collapse_addresses(ipaddress.ip_network(c) for c in cidrs))
    assert collapse(cidrs) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(IPV6_NETWORKS, max_size=20))
def test_collapse_equals_ipaddress_ipv6(cidrs):
    expected = tuple(str(n) for n in ipaddress.collapse_addresses(ipaddress.ip_network(c) for c in cidrs))
    assert collapse(cidrs) == expected


OCTETS = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "007", "1a", "", "²", "１", " 1"]))
PREFIXES = st.one_of(st.just(""), st.integers(0, 40).map(lambda p: f"/{p}"),
                     st.sampled_from(["/", "/08", "/ 8", "/²", "/-1", "/8/8"]))


@settings(max_examples=500, deadline=None)
@given(st.lists(OCTETS, min_size=3, max_size=5), PREFIXES)
def test_normalise_cidr_ipv4_agrees_with_ipaddress(octets, prefix):
    text = ".".join(octets) + prefix
    try:
        expected = str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        expected = None
    if expected is None or text != text.strip():
        with pytest.raises(InputError, match="ranges"):
            normalise_cidr(text, "ranges[0]")
    else:
        assert normalise_cidr(text, "ranges[0]") == expected


@settings(max_examples=300, deadline=None)
@given(IPV4_NETWORKS)
def test_normalise_cidr_keeps_canonical_ipv4_and_respells_a_leading_zero(text):
    assert normalise_cidr(text, "ranges[0]") == text
    address, prefix = text.split("/")
    assert normalise_cidr(address, "ranges[0]") == f"{address}/32"
    if len(prefix) == 1:
        assert normalise_cidr(f"{address}/0{prefix}", "ranges[0]") == text


IPV4_ADDRESSES = st.integers(0, 2**32 - 1).map(lambda value: str(ipaddress.IPv4Address(value)))
# The kernel's IPv6 text may differ from ours in spelling: upper case, every zero written out.
IPV6_ADDRESSES = st.builds(lambda value, spelling: spelling(ipaddress.IPv6Address(value)),
                           st.integers(0, 2**128 - 1),
                           st.sampled_from([str, lambda address: address.exploded.upper()]))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(IPV4_ADDRESSES, max_size=40), st.lists(IPV6_ADDRESSES, max_size=20),
                 st.lists(st.one_of(IPV4_ADDRESSES, IPV6_ADDRESSES), max_size=20)))
def test_sorted_addresses_equals_ipaddress(texts):
    addresses = {ipaddress.ip_address(text) for text in texts}
    expected = tuple(str(address) for address in sorted(addresses, key=lambda address: (address.version, int(address))))
    assert sorted_addresses(texts) == expected


DEFAULT_V4_RULES = [{"priority": 0, "src": "all", "table": "local"}, {"priority": 32766, "src": "all", "table": "main"},
                    {"priority": 32767, "src": "all", "table": "default"}]


@pytest.mark.parametrize("rules, expected", [
    (DEFAULT_V4_RULES, ["local", "main", "default"]),
    (DEFAULT_V4_RULES[:2], ["local", "main"]),
    (DEFAULT_V4_RULES + [{"priority": 100, "src": "all", "fwmark": "0x1", "table": "100"}], None),
    ([{"priority": 0, "src": "10.0.0.0/8", "table": "local"}] + DEFAULT_V4_RULES[1:], None),
    ([{"priority": 5, "src": "all", "table": "main"}], None),
    ([{"priority": 32766, "src": "all", "table": "main", "l3mdev": True}], None),
])
def test_only_the_default_rules_are_modelled(rules, expected):
    assert table_order(rules) == expected


def test_longest_prefix_then_lowest_metric_then_next_table():
    routes = [
        {"dst": "default", "gateway": "192.0.2.254", "dev": "eth0", "flags": []},
        {"dst": "10.0.0.0/8", "dev": "eth1", "metric": 100, "flags": []},
        {"dst": "10.0.0.0/8", "dev": "eth2", "metric": 5, "flags": []},
        {"dst": "10.1.0.0/16", "dev": "eth3", "flags": ["linkdown"]},
        {"type": "throw", "dst": "172.16.0.0/12", "flags": []},
        {"dst": "172.16.0.0/12", "dev": "eth4", "table": "default", "flags": []},
        {"type": "local", "dst": "192.0.2.1", "dev": "eth0", "table": "local", "flags": []},
        {"type": "blackhole", "dst": "198.18.0.0/15", "flags": []},
        {"dst": "203.0.113.0/24", "flags": [], "nexthops": [{"dev": "eth1"}, {"dev": "eth2"}]},
    ]
    lookup = RouteLookup(DEFAULT_V4_RULES, routes, "ipv4")
    assert lookup.lookup("10.2.0.1") == {"dev": "eth2"}
    assert lookup.lookup("10.1.0.1") == UNKNOWN  # a link-down route: left to the kernel
    assert lookup.lookup("172.16.5.5") == {"dev": "eth4"}
    assert lookup.lookup("192.0.2.1") == {"dev": "lo"}
    assert lookup.lookup("198.18.1.1") is None
    assert lookup.lookup("203.0.113.9") == UNKNOWN
    assert lookup.lookup("8.8.8.8") == {"dev": "eth0"}
    assert RouteLookup(DEFAULT_V4_RULES, routes[1:3], "ipv4").lookup("8.8.8.8") is None


ROUTES = st.builds(
    lambda value, prefix, table, kind, metric, dev: dict(
        {"dst": str(ipaddress.IPv4Network((0x0A000000 + value, prefix), strict=False)), "type": kind,
         "metric": metric, "flags": []},
        **({"table": table} if table != "main" else {}), **({"dev": dev} if kind == "unicast" else {})),
    st.integers(0, 4095), st.integers(16, 32), st.sampled_from(["local", "main", "default"]),
    st.sampled_from(["unicast", "unicast", "throw", "blackhole", "local", "broadcast"]), st.sampled_from([0, 5]),
    st.sampled_from(["eth0", "eth1"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(ROUTES, max_size=12), st.booleans(), st.lists(st.integers(0, 8191), max_size=20))
def test_the_bisection_answers_as_the_walk_of_the_tables_for_every_address(routes, default, offsets):
    """Lookups bisect the address space at the routes' boundaries: every address, and every boundary and its
    neighbours, gets the answer of the longest-prefix walk through the tables."""
    if default:
        routes = routes + [{"dst": "default", "gateway": "192.0.2.254", "dev": "eth9", "flags": []}]
    lookup = RouteLookup(DEFAULT_V4_RULES, routes, "ipv4")
    edges = [int(ipaddress.IPv4Network(route["dst"]).network_address) + step for route in routes
             if route["dst"] != "default" for step in (-1, 0, 1)]
    edges += [int(ipaddress.IPv4Network(route["dst"]).broadcast_address) + step for route in routes
              if route["dst"] != "default" for step in (0, 1)]
    for value in [0x0A000000 + offset for offset in offsets] + edges + [0, 2**32 - 1]:
        assert lookup.lookup_value(value) == lookup._walked(value), ipaddress.IPv4Address(value)


@pytest.mark.parametrize("routes, family, device", [
    # The lowest-metric default route of the main table; a route to a multicast prefix is not a default.
    ([{"dst": "default", "gateway": "fe80::1", "dev": "up1", "metric": 1024},
      {"dst": "default", "gateway": "fe80::2", "dev": "up2", "metric": 100},
      {"type": "multicast", "dst": "ff00::/8", "dev": "nm0", "table": "local", "metric": 256}], "ipv6", "up2"),
    ([{"dst": "192.168.50.0/24", "dev": "eth1"}, {"dst": "default", "gateway": "203.0.113.254", "dev": "up1"}],
     "ipv4", "up1"),
    # The default table when main has none.
    ([{"dst": "default", "gateway": "203.0.113.254", "dev": "up3", "table": "default"}], "ipv4", "up3"),
    # None, multipath, or equal metrics on two devices: no answer (the module then asks for interface).
    ([{"dst": "192.168.50.0/24", "dev": "eth1"}], "ipv4", None),
    ([{"dst": "default", "nexthops": [{"dev": "up1"}, {"dev": "up2"}]}], "ipv4", None),
    ([{"dst": "default", "dev": "up1", "metric": 5}, {"dst": "default", "dev": "up2", "metric": 5}], "ipv4", None),
    ([{"type": "unreachable", "dst": "default", "dev": "lo"}], "ipv6", None),
])
def test_internet_ranges_leave_by_the_default_route_of_their_family(routes, family, device):
    assert default_route_device(routes, family) == device
