# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the egress NAT gateway must look like after converge, and again after the gateway node holding the
first floating IP died: floating IPs on the live gateway nodes, the NAT tables, and real TCP from the pods."""

import pytest

from netns_testinfra import whoami

FLOATING_IPS = ["192.168.1.100", "192.168.1.101", "192.168.1.102"]
SERVER, OTHER_SERVER = "203.0.113.10", "198.51.100.10"
NODE_ADDRESS = {"node1": "192.168.1.1", "node2": "192.168.1.2"}


def held_floating_ips(gateway):
    addresses = gateway.check_output("ip -4 -o addr show dev eth0")
    return [address for address in FLOATING_IPS if f" {address}/" in addresses]


def test_every_floating_ip_is_held_by_exactly_one_live_gateway_node(live_gateways):
    held = sorted(address for gateway in live_gateways.values() for address in held_floating_ips(gateway))
    assert held == FLOATING_IPS


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_nodes_have_the_collections_nat_table_beside_their_own_masquerade(hosts, node):
    assert "table inet netkit_egress_nat" in hosts[node].check_output("nft list tables")
    # The node's own masquerade rule for its pods is foreign: it must still be there.
    assert "-j MASQUERADE" in hosts[node].check_output("iptables -t nat -S POSTROUTING")


def test_the_router_has_no_route_to_the_pods(hosts):
    # So every answer a pod gets proves a NAT on the way out, not a route back.
    assert "10.10." not in hosts["rt"].check_output("ip -4 route show")


@pytest.mark.parametrize("pod", ["p1a", "p2a"])
def test_selected_pods_leave_with_the_first_floating_ip(hosts, pod):
    assert whoami(hosts[pod], SERVER) == FLOATING_IPS[0]


@pytest.mark.parametrize(("pod", "node"), [("p1b", "node1"), ("p2b", "node2")])
def test_pods_not_selected_leave_with_their_nodes_address(hosts, pod, node):
    assert whoami(hosts[pod], SERVER) == NODE_ADDRESS[node]


def test_destinations_outside_the_policy_leave_with_the_nodes_address(hosts):
    assert whoami(hosts["p1a"], OTHER_SERVER) == NODE_ADDRESS["node1"]
