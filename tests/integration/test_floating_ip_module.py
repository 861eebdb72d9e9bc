# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""netkit.egress.floating_ip against real namespaces: addresses, announcements, ownership, check mode."""

from __future__ import annotations

import json
from functools import partial

import pytest

import module_play
from module_play import write_inventory

Play = partial(module_play.Play, module="netkit.egress.floating_ip")

FLOATING_V4 = "192.168.1.100"
FLOATING_V6 = "2001:db8:1::100"
FOREIGN_V4 = "192.168.1.77"
STATE_FILE = "/etc/netkit-egress/floating_ips.json"


@pytest.fixture
def segment(lab):
    """gw1, gw2 and a neighbour on one bridge (192.168.1.0/24, 2001:db8:1::/64)."""
    lab.add_host("sw")
    lab.bridge("sw", "br0")
    for host, suffix in (("gw1", 1), ("gw2", 2), ("nb", 50)):
        lab.add_host(host)
        lab.attach("sw", "br0", host, "eth0")
        lab.addr(host, "eth0", f"192.168.1.{suffix}/24")
        lab.addr(host, "eth0", f"2001:db8:1::{suffix}/64")
    return lab


def addresses_on(lab, host, ifname="eth0"):
    """{address: addr_info} of the interface, as the kernel reports it."""
    links = json.loads(lab.sh(host, f"ip -j addr show dev {ifname}").stdout)
    return {info["local"]: info for info in links[0]["addr_info"]}


def mac_of(lab, host, ifname="eth0"):
    return json.loads(lab.sh(host, f"ip -j link show dev {ifname}").stdout)[0]["address"]


def neighbour_mac(lab, host, address):
    entries = json.loads(lab.sh(host, f"ip -j neigh show to {address} dev eth0").stdout or "[]")
    return entries[0].get("lladdr") if entries else None


def test_floating_ips_move_between_gateways_and_neighbours_follow(segment, tmp_path):
    lab = segment
    inventory = write_inventory(lab, tmp_path)
    lab.start_whoami("nb", 8080)
    for gateway in ("gw1", "gw2"):
        lab.start_whoami(gateway, 8081)

    results = (Play(tmp_path, "hold", hosts="gw1")
               .task("hold", addresses=[FLOATING_V4, FLOATING_V6])
               .task("hold again", addresses=[FLOATING_V4, FLOATING_V6])
               .run(inventory))["gw1"]
    first, second = results["hold"], results["hold again"]
    assert first["changed"] and first["added"] == [FLOATING_V4, FLOATING_V6]
    assert first["announced"] == [FLOATING_V4, FLOATING_V6]
    assert not second["changed"] and second["added"] == [] and second["commands"] == []
    assert first["addresses"] == [{"address": FLOATING_V4, "interface": "eth0", "prefix_length": 24},
                                  {"address": FLOATING_V6, "interface": "eth0", "prefix_length": 64}]

    on_gw1 = addresses_on(lab, "gw1")
    assert on_gw1[FLOATING_V4]["prefixlen"] == 24 and on_gw1[FLOATING_V4]["label"] == "eth0:nk"
    assert on_gw1[FLOATING_V4].get("noprefixroute") and on_gw1[FLOATING_V6].get("noprefixroute")
    assert on_gw1[FLOATING_V6]["prefixlen"] == 64
    # The node's own traffic keeps the node's own source address.
    assert lab.whoami("gw1", "192.168.1.50", 8080) == "192.168.1.1"
    assert lab.whoami("gw1", "2001:db8:1::50", 8080) == "2001:db8:1::1"
    routes = json.loads(lab.sh("gw1", "ip -j route show 192.168.1.0/24").stdout)
    assert [route.get("prefsrc") for route in routes] == ["192.168.1.1"]

    # The neighbour talks to the floating IPs: its cache points at gw1.
    assert lab.whoami("nb", FLOATING_V4, 8081) == "192.168.1.50"
    assert lab.whoami("nb", FLOATING_V6, 8081) == "2001:db8:1::50"
    assert neighbour_mac(lab, "nb", FLOATING_V4) == mac_of(lab, "gw1")
    assert neighbour_mac(lab, "nb", FLOATING_V6) == mac_of(lab, "gw1")

    results = (Play(tmp_path, "move")
               .task("release", when="inventory_hostname == 'gw1'", addresses=[], state="exact")
               .task("take", when="inventory_hostname == 'gw2'", addresses=[FLOATING_V4, FLOATING_V6])
               .run(inventory))
    assert results["gw1"]["release"]["removed"] == [FLOATING_V4, FLOATING_V6]
    assert results["gw2"]["take"]["announced"] == [FLOATING_V4, FLOATING_V6]
    assert FLOATING_V4 not in addresses_on(lab, "gw1") and FLOATING_V6 not in addresses_on(lab, "gw1")

    # Without any new traffic from the neighbour, the announcements updated its cache to gw2.
    assert neighbour_mac(lab, "nb", FLOATING_V4) == mac_of(lab, "gw2")
    assert neighbour_mac(lab, "nb", FLOATING_V6) == mac_of(lab, "gw2")
    assert lab.whoami("nb", FLOATING_V4, 8081) == "192.168.1.50"
    assert lab.whoami("nb", FLOATING_V6, 8081) == "2001:db8:1::50"


def test_ownership_check_mode_and_bad_input(segment, tmp_path):
    lab = segment
    inventory = write_inventory(lab, tmp_path, hosts=("gw1",))
    lab.sh("gw1", f"ip addr add {FOREIGN_V4}/24 dev eth0")
    ips = [f"192.168.1.{n}" for n in (100, 101, 102)]

    results = (Play(tmp_path, "converge")
               .task("present", addresses=ips[:2])
               .task("exact", addresses=ips[1:], state="exact")
               .task("exact again", addresses=ips[1:], state="exact")
               .task("absent", addresses=[ips[1], FOREIGN_V4], state="absent")
               .task("gathered", state="gathered")
               .run(inventory, diff=True))["gw1"]
    assert results["present"]["added"] == ips[:2]
    exact = results["exact"]
    assert (exact["changed"], exact["added"], exact["removed"]) == (True, [ips[2]], [ips[0]])
    assert [item["address"] for item in exact["diff"]["before"]["addresses"]] == ips[:2]
    assert [item["address"] for item in exact["diff"]["after"]["addresses"]] == ips[1:]
    assert not results["exact again"]["changed"]
    assert results["absent"]["removed"] == [ips[1]]
    assert results["gathered"]["addresses"] == [{"address": ips[2], "interface": "eth0", "prefix_length": 24}]
    held = addresses_on(lab, "gw1")
    assert ips[2] in held and ips[0] not in held and ips[1] not in held
    assert FOREIGN_V4 in held, "exact and absent must never remove an address they did not add"

    # Check mode predicts the real run and changes nothing (addresses, routes, state file).
    before = lab.snapshot("gw1")
    state_before = lab.sh("gw1", f"cat {STATE_FILE}").stdout
    predicted = (Play(tmp_path, "predict")
                 .task("exact", addresses=[ips[0]], state="exact")
                 .run(inventory, check=True, diff=True))["gw1"]["exact"]
    assert (predicted["changed"], predicted["added"], predicted["removed"]) == (True, [ips[0]], [ips[2]])
    assert predicted["announced"] == []
    assert [item["address"] for item in predicted["diff"]["after"]["addresses"]] == [ips[0]]
    assert lab.snapshot("gw1") == before
    assert lab.sh("gw1", f"cat {STATE_FILE}").stdout == state_before

    bad_inputs = {
        "invalid address": ({"addresses": ["192.168.1.300"]}, "addresses[0]: '192.168.1.300' is not a valid IP"),
        "outside every subnet": ({"addresses": [ips[0], "10.9.9.9"]},
                                 "addresses[1]: 10.9.9.9 is not inside the subnet of any interface"),
        "node address": ({"addresses": [ips[0], "192.168.1.1"]},
                         "addresses[1]: 192.168.1.1 is already configured on eth0 and was not added"),
        "foreign address": ({"addresses": [FOREIGN_V4], "state": "exact"},
                            f"addresses[0]: {FOREIGN_V4} is already configured on eth0"),
        "injection": ({"addresses": [ips[0]], "interface": "eth0;reboot"},
                      "interface: 'eth0;reboot' is not a valid interface name"),
        "missing interface": ({"addresses": [ips[0]], "interface": "eth9"}, "interface: eth9 does not exist"),
        "prefix": ({"addresses": [ips[0]], "prefix_length": 33}, "prefix_length: 33 is not valid for addresses[0]"),
        "with prefix": ({"addresses": ["192.168.1.103/24"]}, "addresses[0]: '192.168.1.103/24' is not a valid IP"),
    }
    refuse = Play(tmp_path, "refuse")
    for name, (params, _message) in bad_inputs.items():
        refuse.task(name, ignore_errors=True, **params)
    results = refuse.run(inventory)["gw1"]
    for name, (_params, message) in bad_inputs.items():
        assert results[name].get("failed"), (name, results[name])
        assert message in results[name]["msg"], (name, results[name]["msg"])
    assert lab.snapshot("gw1") == before
    assert lab.sh("gw1", f"cat {STATE_FILE}").stdout == state_before


def test_gathered_output_is_valid_input_and_a_no_op(segment, tmp_path):
    """Round trip: every gathered address, given back with its interface and prefix length, changes
    nothing (also one held with a prefix length other than its subnet's)."""
    lab = segment
    inventory = write_inventory(lab, tmp_path, hosts=("gw1",))
    held = (Play(tmp_path, "hold")
            .task("hold", addresses=[FLOATING_V4, FLOATING_V6], state="exact")
            .task("hold a host route", addresses=["192.168.1.101"], prefix_length=32)
            .task("gathered", state="gathered")
            .run(inventory))["gw1"]
    gathered = held["gathered"]["addresses"]
    assert gathered == [{"address": FLOATING_V4, "interface": "eth0", "prefix_length": 24},
                        {"address": "192.168.1.101", "interface": "eth0", "prefix_length": 32},
                        {"address": FLOATING_V6, "interface": "eth0", "prefix_length": 64}]
    before = lab.snapshot("gw1")
    state_before = lab.sh("gw1", f"cat {STATE_FILE}").stdout

    again = Play(tmp_path, "again")
    again.task("each gathered address", loop=gathered, addresses=["{{ item.address }}"],
               interface="{{ item.interface }}", prefix_length="{{ item.prefix_length }}")
    results = again.run(inventory)["gw1"]
    each = results["each gathered address"]["results"]
    assert [result["changed"] for result in each] == [False, False, False], each
    assert all(result["commands"] == [] and result["added"] == [] and result["removed"] == [] for result in each)
    assert [result["addresses"] for result in each] == [gathered] * 3
    assert lab.snapshot("gw1") == before
    assert lab.sh("gw1", f"cat {STATE_FILE}").stdout == state_before
