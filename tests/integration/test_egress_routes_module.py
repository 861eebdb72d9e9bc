# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""netkit.egress.egress_routes against a real namespace: gathered output is valid input and a no-op."""

from __future__ import annotations

import json
from functools import partial

import module_play
from module_play import write_inventory

Play = partial(module_play.Play, module="netkit.egress.egress_routes")
ROUTES = [
    {"destination": "192.168.50.0/24", "via": "10.100.0.1"},                     # the kernel picks the device
    {"destination": "2001:DB8:50::/64", "via": "fd00:100::1", "dev": "nm0", "metric": 50},
    {"destination": "198.51.100.7", "dev": "nm0"},                               # no next hop: on link
    {"destination": "2001:db8:60::/64", "via": "fe80::1", "dev": "nm0"},         # link-local next hop
]


def routes_of(lab, host, family, protocol):
    return json.loads(lab.sh(host, f"ip -j {family} route show table 100 proto {protocol}").stdout or "[]")


def test_gathered_output_is_valid_input_and_a_no_op(lab, tmp_path):
    lab.add_host("m1")
    lab.add_host("gw")
    lab.link("m1", "nm0", "gw", "nm0")
    lab.addr("m1", "nm0", "10.100.0.2/24")
    lab.addr("m1", "nm0", "fd00:100::2/64")
    # A route of someone else's in the same table: never ours, never touched.
    lab.sh("m1", "ip -4 route add 203.0.113.0/24 via 10.100.0.1 table 100 proto static")
    inventory = write_inventory(lab, tmp_path, hosts=("m1",))

    first = (Play(tmp_path, "converge")
             .task("exact", routes=ROUTES, table="100", state="exact")
             .task("gathered", table="100", state="gathered")
             .run(inventory))["m1"]
    assert first["exact"]["changed"] is True
    gathered = first["gathered"]["routes"]
    assert gathered == [
        {"destination": "192.168.50.0/24", "via": "10.100.0.1", "dev": "nm0", "metric": 100},
        {"destination": "198.51.100.7/32", "via": None, "dev": "nm0", "metric": 100},
        {"destination": "2001:db8:50::/64", "via": "fd00:100::1", "dev": "nm0", "metric": 50},
        {"destination": "2001:db8:60::/64", "via": "fe80::1", "dev": "nm0", "metric": 100},
    ]
    assert len(routes_of(lab, "m1", "-4", 201)) == 2 and len(routes_of(lab, "m1", "-6", 201)) == 2
    before = lab.snapshot("m1")

    for check in (True, False):
        again = (Play(tmp_path, f"again-check-{check}")
                 .task("exact from gathered", routes=gathered, table="100", state="exact")
                 .run(inventory, check=check))["m1"]["exact from gathered"]
        assert again["changed"] is False and again["commands"] == [], again
        assert again["routes"] == gathered
    assert lab.snapshot("m1") == before
    assert [route["dst"] for route in routes_of(lab, "m1", "-4", "static")] == ["203.0.113.0/24"]
