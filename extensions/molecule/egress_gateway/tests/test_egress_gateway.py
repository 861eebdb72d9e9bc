# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the egress gateway must look like after converge, and again after the gateway machine was replaced:
kernel state on gw and the members, and real TCP from the members to the office server behind gw."""

import json

import pytest

from netns_testinfra import whoami

OFFICE_SERVER = {4: "192.168.50.10", 6: "2001:db8:50::10"}
GATEWAY_UPLINK_ADDRESS = {4: "192.168.50.1", 6: "2001:db8:50::1"}
ROUTES = {
    4: "192.168.50.0/24 via 10.100.0.1 dev nm0 metric 100",
    6: "2001:db8:50::/64 via fd00:100::1 dev nm0 metric 100 pref medium",
}


def test_gateway_has_the_collections_nftables_table_and_forwards(hosts):
    gw = hosts["gw"]
    assert "table inet netkit_egress" in gw.check_output("nft list tables")
    assert gw.sysctl("net.ipv4.ip_forward") == 1
    assert gw.sysctl("net.ipv6.conf.all.forwarding") == 1


@pytest.mark.parametrize("network_address, length, mask", [("192.168.50.0", 24, "255.255.255.0"),
                                                           ("2001:db8:50::", 64, "ffff:ffff:ffff:ffff::")])
def test_gateway_forwards_and_masquerades_the_office_ranges(hosts, network_address, length, mask):
    # How docs/egress_gateway.md says to find a range in `nft list table inet netkit_egress`: its network
    # address is an element of the set of its prefix length (..._l24, comment "/24 ranges to ..."), and the
    # masquerade rule looks up the destination masked to that length in that set (without networks there is
    # no forward chain: it would decide nothing).
    table = json.loads(hosts["gw"].check_output("nft -j list table inet netkit_egress"))["nftables"]
    holding = [item["set"] for item in table
               if network_address in item.get("set", {}).get("elem", ())]
    assert [(s["name"].endswith(f"_l{length}"), s["comment"].startswith(f"/{length} ranges to eth1"))
            for s in holding] == [(True, True)], holding
    ruleset = hosts["gw"].check_output("nft list table inet netkit_egress")
    lookup = f"daddr & {mask} == @{holding[0]['name']}"
    assert [line.split()[-1] for line in ruleset.splitlines() if lookup in line] == ["masquerade"]
    assert "hook forward" not in ruleset


@pytest.mark.parametrize("member", ["m1", "m2"])
def test_members_route_the_office_ranges_through_the_gateway(hosts, member):
    routes = sorted(hosts[member].check_output("ip -4 route show proto 201; ip -6 route show proto 201")
                    .splitlines())
    assert [line.strip() for line in routes] == sorted(ROUTES.values())


def test_the_office_server_knows_only_its_own_subnet(hosts):
    # So any answer it sends to a member proves the gateway's NAT, not a route back.
    assert "10.100.0." not in hosts["srv"].check_output("ip -4 route show")
    assert "fd00:100::" not in hosts["srv"].check_output("ip -6 route show")


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("member", ["m1", "m2"])
def test_members_reach_the_office_with_the_gateways_address(hosts, member, family):
    assert whoami(hosts[member], OFFICE_SERVER[family]) == GATEWAY_UPLINK_ADDRESS[family]
