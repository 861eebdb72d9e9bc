"""Gateway nodes that may not hold floating IPs in this run (issue 12, without VRRP): an uplink that is down
(as the facts show it), gateway_group_state absent, a node that did not answer; their floating IPs go to the
others, balanced, the old holder releases first, and a node that comes back holds nothing twice."""

import copy

import pytest

from ansible_collections.netkit.egress.plugins.filter.egress_nat import host_report
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.plugin_utils import _status_view
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import plan as planner
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import status

FLOATING_IPS = ["192.168.1.100", "192.168.1.101", "192.168.1.102"]
GROUPS = [{"name": "default", "floating_ips": FLOATING_IPS}]
POLICIES = [{"name": "all", "sources": [{}], "destinations": ["203.0.113.0/24"], "gateway_ref": {"name": "default"}}]
GATEWAYS = ("gw1", "gw2", "gw3")


def gateway(address, held=(), up=True, extra_links=(), **changes):
    """A gateway node's report as host_report builds it: eth0 carries the nodes' subnet."""
    links = [{"name": "eth0", "up": up, "addresses": [f"{address}/24"] + [f"{ip}/24" for ip in held]}]
    report = {"reachable": True, "addresses": [f"{address}/24"] if up else [], "held": list(held),
              "own_addresses": [address] + list(held), "connected": [f"{address}/24"],
              "routers": ["192.168.1.254"] if up else [], "links": links + list(extra_links)}
    report.update(changes)
    return report


def hosts(**gateways):
    result = {"gw1": gateway("192.168.1.11", held=["192.168.1.100"]),
              "gw2": gateway("192.168.1.12", held=["192.168.1.101"]),
              "gw3": gateway("192.168.1.13", held=["192.168.1.102"]),
              "node1": {"reachable": True, "addresses": ["192.168.1.1/24"], "connected": ["192.168.1.1/24"],
                        "workloads": [{"name": "web", "address": "10.10.1.10"}], "pod_cidrs": ["10.10.1.0/24"]}}
    result.update(copy.deepcopy(gateways))
    return result


def plan(reports, gateways=GATEWAYS):
    return planner.egress_nat_plan(GROUPS, POLICIES, [], reports, gateways, ["node1"])


def test_nothing_changed_nothing_moves_and_nothing_is_released():
    result = plan(hosts())
    assert result["allocation"] == {"192.168.1.100": "gw1", "192.168.1.101": "gw2", "192.168.1.102": "gw3"}
    assert result["unavailable_gateways"] == [] and result["unavailable_reasons"] == {}
    assert result["releases_by_node"] == {"gw1": [], "gw2": [], "gw3": []}


@pytest.mark.parametrize("case, links, why", [
    ("link down (disabled or no carrier)", [{"name": "eth0", "up": False, "addresses": ["192.168.1.11/24"]}],
     "uplink down: eth0 (the interface of 192.168.1.0/24, where floating IP 192.168.1.100 goes) is down"),
    ("no address in the nodes' subnet any more", [{"name": "eth0", "up": True, "addresses": []}],
     "uplink down: no interface has an address in the subnet of floating IP 192.168.1.100"),
    ("only the floating IP is left on the link", [{"name": "eth0", "up": True, "addresses": ["192.168.1.100/24"]}],
     "uplink down: no interface has an address in the subnet of floating IP 192.168.1.100"),
])
def test_a_gateway_node_whose_uplink_is_down_gets_nothing_and_releases_what_it_held(case, links, why):
    result = plan(hosts(gw1=gateway("192.168.1.11", held=["192.168.1.100"], links=links)))
    assert result["unavailable_gateways"] == ["gw1"]
    assert result["unavailable_reasons"] == {"gw1": {"reason": "UplinkDown", "message": why}}
    assert result["floating_ips_by_node"]["gw1"] == []
    # The others keep theirs (sticky) and the dead node's IP goes to one of them (balanced: 2 and 1).
    assert result["allocation"]["192.168.1.101"] == "gw2" and result["allocation"]["192.168.1.102"] == "gw3"
    assert result["allocation"]["192.168.1.100"] in ("gw2", "gw3")
    assert result["releases_by_node"] == {"gw1": ["192.168.1.100"], "gw2": [], "gw3": []}


def test_a_link_that_does_not_carry_the_floating_ips_may_be_down():
    spare = {"name": "eth1", "up": False, "addresses": ["10.99.0.11/24"]}
    result = plan(hosts(gw1=gateway("192.168.1.11", held=["192.168.1.100"], extra_links=[spare])))
    assert result["unavailable_gateways"] == []
    assert result["allocation"]["192.168.1.100"] == "gw1"


def test_the_longest_prefix_decides_which_link_carries_the_floating_ips():
    wide = {"name": "eth1", "up": False, "addresses": ["192.168.0.11/16"]}
    assert plan(hosts(gw1=gateway("192.168.1.11", extra_links=[wide])))["unavailable_gateways"] == []
    narrow = {"name": "eth1", "up": False, "addresses": ["192.168.1.111/25"]}
    result = plan(hosts(gw1=gateway("192.168.1.11", extra_links=[narrow])))
    assert result["unavailable_reasons"]["gw1"]["message"].startswith("uplink down: eth1 (the interface of "
                                                                      "192.168.1.0/25")


def test_gateway_group_interface_is_the_link_that_must_be_up():
    result = plan(hosts(gw1=gateway("192.168.1.11", interface="eth7")))
    assert result["unavailable_reasons"]["gw1"]["message"] == "uplink down: gateway_group_interface eth7 does not exist"
    spare = {"name": "eth7", "up": False, "addresses": []}
    result = plan(hosts(gw1=gateway("192.168.1.11", interface="eth7", extra_links=[spare])))
    assert result["unavailable_reasons"]["gw1"]["message"] == "uplink down: eth7 (gateway_group_interface) is down"


def test_a_node_that_comes_back_takes_its_share_back_from_one_holder_that_releases_first():
    # gw1's uplink was down: the last run moved 192.168.1.100 to gw2 and gw1 released it. Now it is up again.
    reports = hosts(gw1=gateway("192.168.1.11"), gw2=gateway("192.168.1.12", held=["192.168.1.100", "192.168.1.101"]))
    result = plan(reports)
    assert result["unavailable_gateways"] == []
    # Balanced again (1, 1, 1): gw2 keeps the first it holds and hands the other one to gw1; gw3 is untouched.
    assert result["allocation"] == {"192.168.1.100": "gw2", "192.168.1.101": "gw1", "192.168.1.102": "gw3"}
    assert result["releases_by_node"] == {"gw1": [], "gw2": ["192.168.1.101"], "gw3": []}
    assert result["contested"] == {}


def test_a_node_that_comes_back_still_holding_what_moved_away_holds_it_no_longer_beside_the_new_holder():
    # gw1 could not be reached when its IP moved (so it could not release it); now both hold 192.168.1.100.
    reports = hosts(gw2=gateway("192.168.1.12", held=["192.168.1.100", "192.168.1.101"]))
    result = plan(reports)
    assert result["contested"] == {"192.168.1.100": ["gw1", "gw2"]}
    # Both release it before anyone adds it; the node it is allocated to adds and announces it again.
    assert "192.168.1.100" in result["releases_by_node"]["gw1"] and "192.168.1.100" in result["releases_by_node"]["gw2"]
    holders = [node for node, addresses in result["floating_ips_by_node"].items() if "192.168.1.100" in addresses]
    assert len(holders) == 1
    assert sorted(len(addresses) for addresses in result["floating_ips_by_node"].values()) == [1, 1, 1]


def test_gateway_group_state_absent_hands_the_floating_ips_to_the_others():
    result = plan(hosts(gw1=gateway("192.168.1.11", held=["192.168.1.100"], gateway_state="absent")))
    assert result["unavailable_reasons"] == {"gw1": {"reason": "Released", "message": "gateway_group_state is absent"}}
    assert result["allocation"]["192.168.1.100"] in ("gw2", "gw3")
    assert result["releases_by_node"]["gw1"] == ["192.168.1.100"]


def test_every_gateway_absent_leaves_the_floating_ips_unassigned_instead_of_failing():
    reports = hosts(**{name: gateway(f"192.168.1.1{index}", gateway_state="absent")
                       for index, name in enumerate(GATEWAYS, start=1)})
    result = plan(reports)
    assert result["allocation"] == dict.fromkeys(FLOATING_IPS)
    assert result["floating_ips_by_node"] == {"gw1": [], "gw2": [], "gw3": []}
    assert result["unavailable_gateways"] == list(GATEWAYS)


def test_an_invalid_gateway_group_state_is_refused_naming_the_host():
    with pytest.raises(InputError, match=r"gw2: gateway_group_state: 'gone' is not one of present, absent"):
        plan(hosts(gw2=gateway("192.168.1.12", gateway_state="gone")))


def test_status_shows_the_unavailable_node_and_why():
    reports = hosts(gw1=gateway("192.168.1.11", held=["192.168.1.100"], up=False))
    result = plan(reports)
    report = status.status_report(result, held={"192.168.1.100": "gw2", "192.168.1.101": "gw2",
                                                "192.168.1.102": "gw3"}, applied={"all": ["gw2", "gw3"]})
    group = report["networkGatewayGroups"][0]["status"]
    assert group["nodes"] == {"gw1": "Down", "gw2": "Up", "gw3": "Up"}
    assert [(c["node"], c["reason"]) for c in group["conditions"]] == [("gw1", "UplinkDown")]
    assert "eth0 (the interface of 192.168.1.0/24" in group["conditions"][0]["message"]
    lines = _status_view.status_view(result, {"192.168.1.100": "gw2"}, {}, {"all": ["gw2"]}, "none")["lines"]
    start = lines.index(next(line for line in lines if line.startswith("GATEWAY NODE")))
    rows = [line.split(None, 2) for line in lines[start + 1:]]
    assert rows[0][:2] == ["gw1", "Down"] and rows[0][2].startswith("uplink down: eth0")
    assert [row[:2] for row in rows[1:]] == [["gw2", "Up"], ["gw3", "Up"]]


FACTS = {
    "interfaces": ["lo", "eth0", "eth1"],
    "lo": {"type": "loopback", "active": True, "ipv4": {"address": "127.0.0.1", "prefix": "8"}},
    "eth0": {"type": "ether", "active": False, "ipv4": {"address": "192.168.1.11", "prefix": "24"},
             "ipv4_secondaries": [{"address": "192.168.1.100", "prefix": "24"}],
             "ipv6": [{"address": "fe80::1", "prefix": "64", "scope": "link"}]},
    "eth1": {"type": "ether", "active": True, "ipv4": {"address": "10.99.0.11", "prefix": "24"}},
}


def test_host_report_reads_each_link_up_or_down_and_the_gateway_variables():
    report = host_report({"ansible_facts": FACTS, "gateway_group_state": "absent", "gateway_group_interface": "eth0"})
    assert report["links"] == [
        {"name": "eth0", "up": False, "addresses": ["192.168.1.11/24", "192.168.1.100/24"]},
        {"name": "eth1", "up": True, "addresses": ["10.99.0.11/24"]}]
    assert report["gateway_state"] == "absent" and report["interface"] == "eth0"
    assert host_report({})["links"] is None
    assert host_report({"ansible_facts": FACTS})["gateway_state"] == "present"
