"""_net: one parser, one canonical text, collapse and subtract checked against ipaddress."""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.netkit.egress.plugins.module_utils import _net as net


@pytest.mark.parametrize("value, expected", [
    ("10.1.2.3/8", "10.0.0.0/8"),
    ("10.0.0.5", "10.0.0.5/32"),
    ("2001:DB8::1/32", "2001:db8::/32"),
    ("2001:db8::5", "2001:db8::5/128"),
    ("0.0.0.0/0", "0.0.0.0/0"),
    ("::/0", "::/0"),
])
def test_canonical_cidr_text_always_has_a_prefix(value, expected):
    assert net.normalise_cidr(value, "ranges[0]") == expected


@pytest.mark.parametrize("value", ["", " 10.0.0.0/8", "10.0.0.0/33", "010.0.0.0/8", "10.0.0/8", "x", None, 5,
                                   "10.0.0.0/8 ", "2001:db8::/129", "1.2.3.4/-1"])
def test_invalid_cidrs_name_the_field_and_value(value):
    with pytest.raises(net.InputError) as caught:
        net.normalise_cidr(value, "ranges[3]")
    assert str(caught.value).startswith(f"ranges[3]: {value!r} is not a valid CIDR")
    assert caught.value.field == "ranges[3]"


def test_strict_and_strip():
    assert net.normalise_cidr(" 10.0.0.0/8 ", "f", strip=True) == "10.0.0.0/8"
    with pytest.raises(net.InputError, match=r"host bits set; the network is 10.0.0.0/8"):
        net.normalise_cidr("10.1.0.0/8", "f", strict=True)
    with pytest.raises(net.InputError, match=r"host bits set; the network is 2001:db8::/32"):
        net.normalise_cidr("2001:db8::1/32", "f", strict=True)


def test_addresses():
    assert net.parse_address("2001:DB8::0:1", "via") == "2001:db8::1"
    assert net.parse_address("192.0.2.1", "via", family="ipv4") == "192.0.2.1"
    with pytest.raises(net.InputError, match=r"^via: '192.0.2.1' is not an IPv6 address"):
        net.parse_address("192.0.2.1", "via", family="ipv6")
    with pytest.raises(net.InputError, match="no prefix length allowed"):
        net.parse_address("192.0.2.1/32", "addresses[0]")
    assert net.address_value("192.0.2.1") == ("ipv4", 0xC0000201)
    assert net.address_text("ipv6", 1) == "::1"


def test_names():
    assert net.validate_interface("wg0", "interface") == "wg0"
    for bad in ("", "a" * 16, "eth 0", "..", "x;y", None):
        with pytest.raises(net.InputError, match="is not a valid interface name"):
            net.validate_interface(bad, "interface")
    with pytest.raises(net.InputError, match=r"^networks\[0\]\.name: 'a b' is not a valid name"):
        net.validate_name("a b", "networks[0].name")
    with pytest.raises(net.InputError, match=r"^ranges: must be a list"):
        net.as_list("10.0.0.0/8", "ranges")


def test_mixed_families_refuse_to_collapse():
    with pytest.raises(TypeError):
        net.collapse(["10.0.0.0/8", "2001:db8::/32"])
    assert net.collapse_families(["2001:db8::/33", "10.0.0.0/9", "2001:db8:8000::/33", "10.128.0.0/9"]) == \
        ("10.0.0.0/8", "2001:db8::/32")


def test_subtract_examples():
    assert net.subtract(["10.0.0.0/8"], ["10.1.0.0/16"]) == (
        "10.0.0.0/16", "10.2.0.0/15", "10.4.0.0/14", "10.8.0.0/13", "10.16.0.0/12", "10.32.0.0/11",
        "10.64.0.0/10", "10.128.0.0/9")
    assert net.subtract(["10.0.0.0/24"], ["10.0.0.0/24"]) == ()
    assert net.subtract(["10.0.0.0/24"], ["2001:db8::/32"]) == ("10.0.0.0/24",)
    assert net.subtract(["192.168.50.0/24"], ["192.168.50.128/25", "192.168.50.0/26"]) == ("192.168.50.64/26",)
    assert net.subtract_families(["0.0.0.0/0", "::/0"], ["0.0.0.0/1", "8000::/1"]) == ("128.0.0.0/1", "::/1")


def _networks(version):
    bits = 32 if version == 4 else 128
    return st.builds(lambda value, prefix: str(ipaddress.ip_network((value, prefix), strict=False)),
                     st.integers(0, (1 << bits) - 1), st.integers(0, bits) if version == 4 else
                     st.integers(96, 128))


def _addresses_of(networks):
    # The sets are compared as intervals: [first, last] pairs merged by ipaddress.
    return list(ipaddress.collapse_addresses(ipaddress.ip_network(text) for text in networks))


@settings(max_examples=300, deadline=None)
@given(st.lists(_networks(4), max_size=12), st.lists(_networks(4), max_size=6))
def test_subtract_matches_ipaddress_ipv4(cidrs, excluded):
    expected = _addresses_of(cidrs)
    for hole in excluded:
        hole = ipaddress.ip_network(hole)
        remaining = []
        for network in expected:
            if network.overlaps(hole):
                remaining += list(network.address_exclude(hole)) if hole.subnet_of(network) else \
                    ([] if network.subnet_of(hole) else [network])
            else:
                remaining.append(network)
        expected = list(ipaddress.collapse_addresses(remaining))
    assert net.subtract(cidrs, excluded) == tuple(str(n) for n in expected)


@settings(max_examples=200, deadline=None)
@given(st.lists(_networks(6), min_size=1, max_size=12))
def test_collapse_matches_ipaddress_ipv6(cidrs):
    assert net.collapse(cidrs) == tuple(str(n) for n in _addresses_of(cidrs))


def test_cidr_contains_and_overlaps():
    outer, inner = net.cidr_of("10.0.0.0/8"), net.cidr_of("10.1.0.0/16")
    assert inner in outer and outer not in inner
    assert outer.overlaps(inner) and not outer.overlaps(net.cidr_of("11.0.0.0/8"))
    assert net.cidr_of("2001:db8::/64").last == int(ipaddress.ip_address("2001:db8::ffff:ffff:ffff:ffff"))
