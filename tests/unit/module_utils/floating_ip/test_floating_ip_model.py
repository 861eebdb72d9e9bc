# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""floating_ip, pure parts: validation, ownership, placement, plan, commands."""

from __future__ import annotations

import json
import re

import pytest

from ansible_collections.netkit.egress.plugins.module_utils._floating_ip import model as fip
from ansible_collections.netkit.egress.plugins.module_utils._floating_ip.model import FloatingIP
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError


def A(text):
    """An address as the model holds it: its canonical text (every literal below is canonical)."""
    return text


IP_ADDR_JSON = [
    {"ifname": "lo", "link_type": "loopback", "address": "00:00:00:00:00:00", "addr_info": [
        {"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
    {"ifname": "eth0", "link_type": "ether", "address": "02:00:00:00:00:01", "addr_info": [
        {"family": "inet", "local": "192.168.1.1", "prefixlen": 24, "scope": "global", "label": "eth0"},
        {"family": "inet", "local": "192.168.1.100", "prefixlen": 24, "scope": "global", "label": "eth0:nk"},
        {"family": "inet", "local": "192.168.1.77", "prefixlen": 24, "scope": "global", "label": "eth0"},
        {"family": "inet6", "local": "2001:db8:1::1", "prefixlen": 64, "scope": "global"},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]},
    {"ifname": "eth1", "link_type": "ether", "address": "02:00:00:00:00:02", "addr_info": [
        {"family": "inet", "local": "10.0.0.1", "prefixlen": 16, "scope": "global"},
        {"family": "inet", "local": "10.0.5.1", "prefixlen": 24, "scope": "global"}]},
    {"ifname": "eth2", "link_type": "ether", "address": "02:00:00:00:00:03", "addr_info": [
        {"family": "inet", "local": "10.0.5.2", "prefixlen": 24, "scope": "global"}]},
]
ON_HOST = fip.host_addresses(IP_ADDR_JSON)
OURS = FloatingIP(A("192.168.1.100"), "eth0", 24)
HELD = [OURS]


# ---- request validation ---------------------------------------------------------------------
@pytest.mark.parametrize("values, message", [
    (["192.168.1.300"], "addresses[0]: '192.168.1.300' is not a valid IP address"),
    (["192.168.1.100", "192.168.1.100/24"], "addresses[1]: '192.168.1.100/24' is not a valid IP address"),
    (["192.168.1.100", "2001:db8::1", "192.168.1.100"],
     "addresses[2]: 192.168.1.100 is listed twice (also addresses[0])"),
    (["eth0; reboot"], "addresses[0]: 'eth0; reboot' is not a valid IP address"),
])
def test_parse_addresses_errors_name_the_field(values, message):
    with pytest.raises(InputError, match=re.escape(message)):
        fip.parse_addresses(values)


def test_parse_addresses_canonicalises():
    assert fip.parse_addresses(["2001:DB8:0::0064", " 192.168.1.100"]) == [A("2001:db8::64"), A("192.168.1.100")]


def test_the_same_address_in_two_spellings_is_listed_twice():
    with pytest.raises(InputError, match=re.escape("addresses[1]: 2001:db8::64 is listed twice (also addresses[0])")):
        fip.parse_addresses(["2001:db8::64", "2001:DB8:0::0064"])


@pytest.mark.parametrize("name, valid", [
    ("eth0", True), ("br-lan.10", True), ("veth@x_1", True), ("a" * 15, True),
    ("a" * 16, False), ("eth0;reboot", False), ("eth0 up", False), ("$(id)", False), ("", False),
])
def test_validate_interface(name, valid):
    if valid:
        assert fip.validate_interface(name) == name
    else:
        with pytest.raises(InputError, match="interface: .* is not a valid interface name"):
            fip.validate_interface(name)


def test_validate_prefix_length_per_family():
    assert fip.validate_prefix_length(64, [A("2001:db8::1")]) == 64
    with pytest.raises(InputError, match=r"prefix_length: 64 is not valid for addresses\[1\] 192.0.2.1"):
        fip.validate_prefix_length(64, [A("2001:db8::1"), A("192.0.2.1")])


# ---- ownership and state file ---------------------------------------------------------------
def test_ownership_needs_record_and_presence_on_the_recorded_interface():
    records = [FloatingIP(A("192.168.1.100"), "eth0", 24),      # recorded and present: ours
               FloatingIP(A("192.168.1.101"), "eth0", 24),      # recorded, gone from the host
               FloatingIP(A("10.0.5.2"), "eth1", 24)]           # recorded on eth1, present on eth2
    assert fip.owned(records, ON_HOST) == [OURS]


def test_state_file_round_trip_and_corruption():
    text = fip.render_state([FloatingIP(A("2001:db8::5"), "eth0", 64), OURS])
    assert json.loads(text)["addresses"][0] == {"address": "192.168.1.100", "interface": "eth0",
                                                "prefix_length": 24}
    assert fip.parse_state(text, "/x") == [OURS, FloatingIP(A("2001:db8::5"), "eth0", 64)]
    assert fip.parse_state(None, "/x") == []
    with pytest.raises(InputError, match="state_file: /x is not a floating_ip state file"):
        fip.parse_state("{not json", "/x")


# ---- placement -------------------------------------------------------------------------------
@pytest.mark.parametrize("address, interface, prefix, expected", [
    ("192.168.1.101", None, None, FloatingIP(A("192.168.1.101"), "eth0", 24)),
    ("192.168.1.100", None, None, OURS),
    ("2001:db8:1::100", None, None, FloatingIP(A("2001:db8:1::100"), "eth0", 64)),
    ("10.0.9.9", None, None, FloatingIP(A("10.0.9.9"), "eth1", 16)),
    ("192.168.1.101", None, 32, FloatingIP(A("192.168.1.101"), "eth0", 32)),
    ("198.51.100.7", "eth1", None, FloatingIP(A("198.51.100.7"), "eth1", 32)),
    ("10.0.5.9", "eth2", None, FloatingIP(A("10.0.5.9"), "eth2", 24)),
])
def test_resolve_places_the_address(address, interface, prefix, expected):
    assert fip.resolve(0, A(address), ON_HOST, HELD, interface, prefix) == expected


@pytest.mark.parametrize("index, address, message", [
    (2, "198.51.100.7", "addresses[2]: 198.51.100.7 is not inside the subnet of any interface on this host"),
    (0, "10.0.5.9", "addresses[0]: 10.0.5.9 is inside subnets of several interfaces (eth1, eth2); set interface"),
    (1, "192.168.1.1", "addresses[1]: 192.168.1.1 is already configured on eth0 and was not added"),
    (0, "192.168.1.77", "addresses[0]: 192.168.1.77 is already configured on eth0"),
    (0, "fe80::99", "addresses[0]: fe80::99 is not inside the subnet of any interface"),
])
def test_resolve_refuses(index, address, message):
    with pytest.raises(InputError, match=re.escape(message)):
        fip.resolve(index, A(address), ON_HOST, HELD)


# ---- plan --------------------------------------------------------------------------------------
NEW = FloatingIP(A("192.168.1.101"), "eth0", 24)
OTHER = FloatingIP(A("192.168.1.102"), "eth0", 24)


@pytest.mark.parametrize("state, requested, desired, held, to_remove, to_add", [
    ("present", [NEW.address], [NEW], [OURS], [], [NEW]),
    ("present", [OURS.address], [OURS], [OURS], [], []),
    ("present", [OURS.address], [OURS._replace(prefix_length=32)], [OURS], [OURS],
     [OURS._replace(prefix_length=32)]),
    ("exact", [NEW.address], [NEW], [OURS, OTHER], [OURS, OTHER], [NEW]),
    ("exact", [], [], [OURS], [OURS], []),
    ("exact", [OURS.address], [OURS], [OURS], [], []),
    ("absent", [OURS.address, A("192.168.1.77")], [], [OURS, OTHER], [OURS], []),
    ("absent", [NEW.address], [], [OURS], [], []),
    ("gathered", [], [], [OURS], [], []),
])
def test_plan(state, requested, desired, held, to_remove, to_add):
    assert fip.plan(state, requested, desired, held) == (to_remove, to_add)


def test_after_is_sorted_numerically():
    v6 = FloatingIP(A("2001:db8::1"), "eth0", 64)
    assert fip.after([v6, OTHER], [OTHER], [NEW, OURS]) == [OURS, NEW, v6]


# ---- commands ----------------------------------------------------------------------------------
@pytest.mark.parametrize("interface, label", [
    ("eth0", "eth0:nk"), ("a" * 12, "a" * 12 + ":nk"), ("b" * 15, "b" * 12 + ":nk")])
def test_label_fits_15_characters(interface, label):
    assert fip.label_for(interface) == label and len(label) <= 15


def test_batch_commands_remove_first_then_add():
    v6 = FloatingIP(A("2001:db8:1::100"), "eth0", 64)
    assert fip.batch_commands([OURS], [NEW, v6]) == [
        "address del 192.168.1.100/24 dev eth0",
        "address add 192.168.1.101/24 dev eth0 noprefixroute label eth0:nk",
        "address add 2001:db8:1::100/64 dev eth0 noprefixroute nodad preferred_lft 0",
    ]
