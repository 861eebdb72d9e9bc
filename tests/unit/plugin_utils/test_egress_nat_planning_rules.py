"""Issue 11's planner rules as tables: inventory and what the hosts reported -> the error naming the field,
or the plan (overlapping policies: the name that sorts first wins; floating IPs never a router or an
address in use; workload addresses unique, nobody's own, on a network of their node)."""

import copy

import pytest

from ansible_collections.netkit.egress.plugins.filter.egress_nat import egress_nat_plan as filter_plan
from ansible_collections.netkit.egress.plugins.filter.egress_nat import host_report
from ansible_collections.netkit.egress.plugins.module_utils._floating_ip import model as fip_model
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import plan as planner
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import status
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.overlap import shadowing

GROUPS = [{"name": "default", "floating_ips": ["192.168.1.100", "192.168.1.101"]},
          {"name": "team", "floating_ips": ["192.168.1.103"]},
          {"name": "v6", "floating_ips": ["2001:db8:1::100"]}]
NAMESPACES = [{"name": "alice-ns", "labels": {"user": "alice"}}]


def reported(addresses, connected, routers=("192.168.1.254",), workloads=(), pod_cidrs=(), reachable=True):
    return {"reachable": reachable, "addresses": list(addresses), "own_addresses": [a.split("/")[0] for a in connected],
            "connected": list(connected), "routers": list(routers), "workloads": list(workloads),
            "pod_cidrs": list(pod_cidrs), "held": []}


def pod(name, address, role="frontend"):
    return {"name": name, "namespace": "alice-ns", "labels": {"role": role}, "address": address}


HOSTS = {
    "gw1": reported(["192.168.1.11/24", "2001:db8:1::11/64"], ["192.168.1.11/24", "2001:db8:1::11/64"], ["192.168.1.254", "fe80::1"]),
    "gw2": reported(["192.168.1.12/24"], ["192.168.1.12/24", "10.99.0.12/24"]),
    "node1": reported(["192.168.1.1/24"], ["192.168.1.1/24", "10.10.1.1/24", "2001:db8:1::1/64"],
                      workloads=[pod("p1a", "10.10.1.10"), pod("p1b", "10.10.1.11", "backend")]),
    "node2": reported(["192.168.1.2/24"], ["192.168.1.2/24", "10.10.2.1/24", "192.168.1.60/24"],
                      workloads=[pod("p2a", "10.10.2.10")]),
}


def policy(name, ref, destinations=("203.0.113.0/24",), sources=({},), excluded=()):
    return {"name": name, "sources": list(sources), "destinations": list(destinations),
            "excluded_destinations": list(excluded), "gateway_ref": {"name": ref}}


FRONTENDS = {"pod_selector": {"match_labels": {"role": "frontend"}}}
POLICIES = [policy("b-everyone", "default"), policy("a-frontends", "team", sources=[FRONTENDS])]


def plan(hosts=None, groups=None, policies=None):
    return planner.egress_nat_plan(groups or GROUPS, POLICIES if policies is None else policies, NAMESPACES,
                                   hosts or HOSTS, ["gw1", "gw2"], ["node1", "node2"])


def with_host(name, **changes):
    hosts = copy.deepcopy(HOSTS)
    hosts[name].update(changes)
    return hosts


def with_ips(*ips):
    groups = copy.deepcopy(GROUPS)
    groups[0]["floating_ips"] = list(ips)
    return groups


# ---- refused, naming the field -------------------------------------------------------------------
REFUSED = [
    ("floating IP is every node's router", dict(groups=with_ips("192.168.1.100", "192.168.1.254")),
     "network_gateway_groups[0] (default): floating_ips[1]: 192.168.1.254 is the default gateway of nodes gw1, "
     "gw2, node1, node2"),
    ("floating IP is one node's router", dict(groups=with_ips("192.168.1.100", "192.168.1.250"),
                                              hosts=with_host("node2", routers=["192.168.1.250"])),
     "floating_ips[1]: 192.168.1.250 is the default gateway of node node2"),
    ("IPv6 router", dict(groups=[GROUPS[0], GROUPS[1], {"name": "v6", "floating_ips": ["2001:db8:1::fe"]}],
                         hosts=with_host("gw1", routers=["2001:db8:1::fe"])),
     "network_gateway_groups[2] (v6): floating_ips[0]: 2001:db8:1::fe is the default gateway of node gw1"),
    ("floating IP is a cluster node's secondary address (facts)", dict(groups=with_ips("192.168.1.60")),
     "floating_ips[0]: 192.168.1.60 is node node2's own address"),
    ("workload on two nodes", dict(hosts=with_host("node2", workloads=[pod("p2a", "10.10.1.10")])),
     "node2: egress_workloads[0] (p2a).address: 10.10.1.10 is also the address of node1: egress_workloads[0] (p1a)"),
    ("workload listed twice on one node",
     dict(hosts=with_host("node1", workloads=[pod("a", "10.10.1.10"), pod("b", "10.10.1.10")])),
     "node1: egress_workloads[1] (b).address: 10.10.1.10 is also the address of node1: egress_workloads[0] (a)"),
    ("workload is a node's own address", dict(hosts=with_host("node1", workloads=[pod("w", "192.168.1.2")])),
     "node1: egress_workloads[0] (w).address: 192.168.1.2 is node node2's own address"),
    ("workload is a gateway's other address", dict(hosts=with_host("node1", workloads=[pod("w", "10.99.0.12")])),
     "10.99.0.12 is node gw2's own address"),
    ("workload is the router", dict(hosts=with_host("node1", workloads=[pod("w", "192.168.1.254")])),
     "node1: egress_workloads[0] (w).address: 192.168.1.254 is the default gateway of nodes gw1, gw2, node1, node2"),
    ("workload is a floating IP", dict(hosts=with_host("node1", workloads=[pod("w", "192.168.1.101")])),
     "192.168.1.101 is a floating IP of NetworkGatewayGroup kube-system/default"),
    ("workload lives on another node", dict(hosts=with_host("node1", workloads=[pod("w", "10.10.2.20")])),
     "node1: egress_workloads[0] (w).address: 10.10.2.20 is not on a network of node node1 (192.168.1.0/24, "
     "10.10.1.0/24, 2001:db8:1::/64); it is on a network of node node2"),
    ("workload outside the declared pod CIDRs",
     dict(hosts=with_host("node1", pod_cidrs=["10.10.1.0/25"], workloads=[pod("w", "10.10.1.200")])),
     "10.10.1.200 is not in the egress_nat_pod_cidrs of node node1 (10.10.1.0/25)"),
    ("IPv6 workload on a node without IPv6", dict(hosts=with_host("node2", workloads=[pod("w", "fd00:10:2::5")])),
     "fd00:10:2::5 is not on a network of node node2"),
    ("pod CIDR with host bits", dict(hosts=with_host("node1", pod_cidrs=["10.10.1.1/24"])),
     "node1: egress_nat_pod_cidrs[0]: '10.10.1.1/24' is not a valid CIDR (host bits set; the network is "
     "10.10.1.0/24)"),
]


@pytest.mark.parametrize("case, kwargs, message", REFUSED, ids=[case[0] for case in REFUSED])
def test_refused_before_any_host_changes_naming_the_field(case, kwargs, message):
    with pytest.raises(InputError) as raised:
        plan(**kwargs)
    assert message in str(raised.value)


# ---- accepted --------------------------------------------------------------------------------------
ACCEPTED = [
    ("a floating IP a gateway holds (floating_ip or keepalived put it there)",
     dict(hosts=with_host("gw1", own_addresses=["192.168.1.11", "192.168.1.100"]))),
    ("a workload inside its declared pod CIDRs but not on a connected network",
     dict(hosts=with_host("node1", pod_cidrs=["10.20.1.0/24"], workloads=[pod("w", "10.20.1.5")]))),
    ("a workload of an unreachable node without declared pod CIDRs",
     dict(hosts=with_host("node2", reachable=False, connected=[], own_addresses=[],
                          workloads=[pod("w", "10.30.0.1")]))),
    ("a workload on the nodes' subnet (macvlan)", dict(hosts=with_host("node1", workloads=[pod("w", "192.168.1.77")]))),
]


@pytest.mark.parametrize("case, kwargs", ACCEPTED, ids=[case[0] for case in ACCEPTED])
def test_accepted(case, kwargs):
    assert plan(**kwargs)["policies"]


# ---- overlapping policies: the name that sorts first wins -----------------------------------------------
def planned(name, egress_ip, sources, destinations, excluded=()):
    return {"name": name, "egress_ip": egress_ip, "sources": list(sources), "destinations": list(destinations),
            "excluded_destinations": list(excluded)}


OVERLAPS = [
    ("disjoint sources", [planned("a", "192.0.2.1", ["10.0.0.1"], ["203.0.113.0/24"]),
                          planned("b", "192.0.2.2", ["10.0.0.2"], ["203.0.113.0/24"])], {}, set()),
    ("disjoint destinations", [planned("a", "192.0.2.1", ["10.0.0.1"], ["203.0.113.0/25"]),
                               planned("b", "192.0.2.2", ["10.0.0.1"], ["203.0.113.128/25"])], {}, set()),
    ("the same egress IP is no conflict", [planned("a", "192.0.2.1", ["10.0.0.1"], ["203.0.113.0/24"]),
                                           planned("b", "192.0.2.1", ["10.0.0.1"], ["203.0.113.0/24"])], {}, set()),
    ("an excluded destination of the winner stays with the loser",
     [planned("a", "192.0.2.1", ["10.0.0.1"], ["203.0.113.0/24"], ["203.0.113.128/25"]),
      planned("b", "192.0.2.2", ["10.0.0.1", "10.0.0.2"], ["203.0.113.0/24"])],
     {"b": [("a", ["10.0.0.1"], ["203.0.113.0/25"])]}, set()),
    ("input order does not matter, names do",
     [planned("z-wide", "192.0.2.2", ["10.0.0.1", "10.0.0.2"], ["0.0.0.0/0"]),
      planned("m-narrow", "192.0.2.1", ["10.0.0.1"], ["203.0.113.0/24"])],
     {"z-wide": [("m-narrow", ["10.0.0.1"], ["203.0.113.0/24"])]}, set()),
    ("fully shadowed", [planned("a", "192.0.2.1", ["10.0.0.1", "10.0.0.2"], ["0.0.0.0/0"]),
                        planned("b", "192.0.2.2", ["10.0.0.1"], ["203.0.113.0/24"])],
     {"b": [("a", ["10.0.0.1"], ["203.0.113.0/24"])]}, {"b"}),
    ("a middle policy takes what the first left", [
        planned("a", "192.0.2.1", ["10.0.0.1"], ["203.0.113.0/25"]),
        planned("b", "192.0.2.2", ["10.0.0.1"], ["203.0.113.0/24"]),
        planned("c", "192.0.2.3", ["10.0.0.1"], ["203.0.113.0/24"])],
     {"b": [("a", ["10.0.0.1"], ["203.0.113.0/25"])],
      "c": [("a", ["10.0.0.1"], ["203.0.113.0/25"]), ("b", ["10.0.0.1"], ["203.0.113.128/25"])]}, {"c"}),
]


@pytest.mark.parametrize("case, policies, expected, fully", OVERLAPS, ids=[case[0] for case in OVERLAPS])
def test_overlaps(case, policies, expected, fully):
    result = shadowing(policies)
    assert {name: [(part["policy"], part["sources"], part["destinations"]) for part in entry["shadowed_by"]]
            for name, entry in result.items() if entry["shadowed_by"]} == expected
    assert {name for name, entry in result.items() if entry["fully_shadowed"]} == fully
    for loser, parts in expected.items():
        for winner, _sources, _destinations in parts:
            assert loser in [part["policy"] for part in result[winner]["shadows"]]


def test_plan_and_status_name_the_winner():
    result = plan()
    by_name = {policy["name"]: policy for policy in result["policies"]}
    assert by_name["b-everyone"]["shadowed_by"] == [
        {"policy": "a-frontends", "egress_ip": "192.168.1.103", "sources": ["10.10.1.10", "10.10.2.10"],
         "destinations": ["203.0.113.0/24"]}]
    assert not by_name["b-everyone"]["fully_shadowed"]
    report = status.status_report(result, held={"192.168.1.100": "gw1", "192.168.1.103": "gw2"},
                                  applied={"a-frontends": ["gw1", "gw2"], "b-everyone": ["gw1", "gw2"]})
    states = {p["metadata"]["name"]: p["status"] for p in report["egressNATPolicies"]}
    assert states["a-frontends"]["state"] == "Applied"
    assert states["b-everyone"]["state"] == "PartiallyShadowed"
    (condition,) = states["b-everyone"]["conditions"]
    assert condition["winner"] == "a-frontends" and condition["type"] == "Shadowed"
    assert "10.10.1.10, 10.10.2.10 to 203.0.113.0/24 leaves as 192.168.1.103, not 192.168.1.100" in \
        condition["message"]


def test_status_of_a_fully_shadowed_policy():
    policies = POLICIES + [policy("c-frontends", "v6", destinations=["2001:db8:99::/64"], sources=[FRONTENDS])]
    result = plan(policies=[POLICIES[1], policy("b-frontends", "default", sources=[FRONTENDS])])
    report = status.status_report(result, held={"192.168.1.100": "gw1", "192.168.1.103": "gw2"},
                                  applied={"a-frontends": ["gw1"], "b-frontends": ["gw1"]})
    states = {p["metadata"]["name"]: p["status"]["state"] for p in report["egressNATPolicies"]}
    assert states == {"a-frontends": "Applied", "b-frontends": "Shadowed"}
    assert plan(policies=policies)["policies"][2]["shadowed_by"] == []  # IPv6: nothing selected to overlap


# ---- what the filter reads from facts -----------------------------------------------------------------
FACTS = {
    "interfaces": ["lo", "eth0", "cbr0", "br-x"],
    "all_ipv4_addresses": ["192.168.1.1", "192.168.1.60", "10.10.1.1"],
    "all_ipv6_addresses": ["2001:db8:1::1", "fe80::1"],
    "default_ipv4": {"address": "192.168.1.1", "prefix": "24", "gateway": "192.168.1.254"},
    "default_ipv6": {"address": "2001:db8:1::1", "prefix": "64", "gateway": "fe80::fe"},
    "lo": {"type": "loopback", "ipv4": {"address": "127.0.0.1", "prefix": "8"}},
    "eth0": {"ipv4": {"address": "192.168.1.1", "prefix": "24"},
             "ipv4_secondaries": [{"address": "192.168.1.60", "prefix": "24"}],
             "ipv6": [{"address": "2001:db8:1::1", "prefix": "64", "scope": "global"},
                      {"address": "fe80::1", "prefix": "64", "scope": "link"}]},
    "cbr0": {"ipv4": {"address": "10.10.1.1", "prefix": "24"}},
    "br_x": {"ipv4": {"address": "172.18.0.1", "prefix": "16"}},
}


def test_host_report_reads_routers_addresses_and_connected_networks_from_facts():
    report = host_report({"ansible_facts": FACTS, "egress_nat_pod_cidrs": ["10.10.1.0/24"]})
    assert report["routers"] == ["192.168.1.254", "fe80::fe"]
    assert report["own_addresses"] == ["192.168.1.1", "192.168.1.60", "10.10.1.1", "2001:db8:1::1", "fe80::1"]
    assert report["connected"] == ["192.168.1.1/24", "192.168.1.60/24", "2001:db8:1::1/64", "10.10.1.1/24",
                                   "172.18.0.1/16"]
    assert report["pod_cidrs"] == ["10.10.1.0/24"]


# ---- what the filter reads from floating_ip's host_network (the playbooks gather no facts) -------------
UP = ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"]
IP_ADDR = [
    {"ifname": "lo", "link_type": "loopback", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "addr_info": [
        {"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"},
        {"family": "inet6", "local": "::1", "prefixlen": 128, "scope": "host"}]},
    {"ifname": "eth0", "link_type": "ether", "flags": UP, "addr_info": [
        {"family": "inet", "local": "192.168.1.1", "prefixlen": 24, "scope": "global"},
        {"family": "inet", "local": "192.168.1.60", "prefixlen": 24, "scope": "global", "secondary": True},
        {"family": "inet6", "local": "2001:db8:1::1", "prefixlen": 64, "scope": "global"},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]},
    {"ifname": "cbr0", "link_type": "ether", "flags": UP, "addr_info": [
        {"family": "inet", "local": "10.10.1.1", "prefixlen": 24, "scope": "global"}]},
    {"ifname": "br-x", "link_type": "ether", "flags": UP, "addr_info": [
        {"family": "inet", "local": "172.18.0.1", "prefixlen": 16, "scope": "global"}]},
]
DEFAULT_ROUTES = {"ipv4": [{"dst": "default", "gateway": "192.168.1.254", "dev": "eth0", "flags": []}],
                  "ipv6": [{"dst": "default", "gateway": "fe80::fe", "dev": "eth0", "metric": 1024, "flags": []}]}


def test_host_report_from_host_network_says_what_the_facts_say():
    network = fip_model.host_network(IP_ADDR, DEFAULT_ROUTES)
    report = host_report({"egress_nat_held": {"addresses": [], "host_network": network},
                          "egress_nat_pod_cidrs": ["10.10.1.0/24"]})
    from_facts = host_report({"ansible_facts": FACTS, "egress_nat_pod_cidrs": ["10.10.1.0/24"]})
    assert report["reachable"] and from_facts["reachable"]
    assert report["addresses"] == from_facts["addresses"] == ["192.168.1.1/24", "2001:db8:1::1/64"]
    assert report["routers"] == from_facts["routers"]
    assert sorted(report["connected"]) == sorted(from_facts["connected"])
    assert sorted(report["own_addresses"]) == sorted(from_facts["own_addresses"] + ["172.18.0.1"])
    assert report["links"] == [{"name": name, "up": True, "addresses": addresses} for name, addresses in (
        ("eth0", ["192.168.1.1/24", "192.168.1.60/24", "2001:db8:1::1/64"]), ("cbr0", ["10.10.1.1/24"]),
        ("br-x", ["172.18.0.1/16"]))]
    no_carrier = fip_model.host_network([dict(IP_ADDR[1], flags=["BROADCAST", "MULTICAST", "UP"])], {})
    assert host_report({"egress_nat_held": {"addresses": [], "host_network": no_carrier}})["links"][0]["up"] is False
    # Not read at all (unreachable: the registered result has no host_network, and there are no facts).
    assert not host_report({"egress_nat_held": {"unreachable": True, "msg": "no such namespace"}})["reachable"]


def test_the_plan_is_the_same_from_host_network_as_from_facts():
    hostvars = {name: {"egress_nat_held": {"addresses": [], "host_network": fip_model.host_network(
        [IP_ADDR[0], dict(IP_ADDR[1], addr_info=[{"family": "inet", "local": address, "prefixlen": 24,
                                                  "scope": "global"}])],
        {"ipv4": [{"dst": "default", "gateway": "192.168.1.254", "dev": "eth0"}], "ipv6": []})}}
        for name, address in (("gw1", "192.168.1.11"), ("node1", "192.168.1.21"))}
    facts = {name: {"ansible_facts": {"interfaces": ["lo", "eth0"], "all_ipv4_addresses": [address],
                                      "default_ipv4": {"address": address, "prefix": "24",
                                                       "gateway": "192.168.1.254"},
                                      "eth0": {"ipv4": {"address": address, "prefix": "24"}}}}
             for name, address in (("gw1", "192.168.1.11"), ("node1", "192.168.1.21"))}
    for source in (hostvars, facts):
        source["node1"]["egress_workloads"] = []
    groups = [{"name": "default", "floating_ips": ["192.168.1.100"]}]
    assert filter_plan(groups, [], [], hostvars, ["gw1"], ["node1"]) == \
        filter_plan(groups, [], [], facts, ["gw1"], ["node1"])


def test_a_node_needing_more_egress_ips_than_its_mark_mask_numbers_fails_planning_naming_the_variable():
    # p1a is selected by both policies (two egress IPs on node1); a one-bit mask numbers one egress IP.
    assert len({entry["egress_ip"] for entry in plan()["source_config"]["node1"]}) == 2
    with pytest.raises(InputError, match=r"^node1: egress_nat_mark_mask: 0x00010000 numbers 1 egress IPs, but the "
                                         r"policies selecting workloads of node node1 use 2$"):
        plan(hosts=with_host("node1", mark_mask="0x00010000"))
    with pytest.raises(InputError, match=r"^node1: egress_nat_mark_mask: 0x00ff00ff must be one run of contiguous"):
        plan(hosts=with_host("node1", mark_mask="0x00ff00ff"))
    with pytest.raises(InputError, match=r"^node1: egress_nat_mark_mask: 'zz' is not an integer$"):
        plan(hosts=with_host("node1", mark_mask="zz"))
    assert plan(hosts=with_host("node1", mark_mask="0x00030000"))["source_config"]["node1"]


def fleet_hostvars(**options):
    """gw1 and node1 as their reads report them, with ``options`` (host -> role options) from the inventory."""
    hostvars = {name: {"egress_nat_held": {"addresses": [], "host_network": fip_model.host_network(
        [IP_ADDR[0], dict(IP_ADDR[1], addr_info=[{"family": "inet", "local": address, "prefixlen": 24,
                                                  "scope": "global"}])],
        {"ipv4": [{"dst": "default", "gateway": "192.168.1.254", "dev": "eth0"}], "ipv6": []})}}
        for name, address in (("gw1", "192.168.1.11"), ("node1", "192.168.1.21"))}
    hostvars["node1"]["egress_workloads"] = []
    for name, values in options.items():
        hostvars[name].update(values)
    return hostvars


def plan_fleet(hostvars):
    return filter_plan([{"name": "default", "floating_ips": ["192.168.1.100"]}], [], [], hostvars, ["gw1"], ["node1"])


@pytest.mark.parametrize("host, options, words", [
    ("node1", {"egress_nat_state": "presnt"},
     "node1: options of the role netkit.egress.egress_nat: value of egress_nat_state must be one of: present, "
     "absent, got: presnt"),
    ("node1", {"egress_nat_route_table_base": "lots"}, "node1: options of the role netkit.egress.egress_nat: "),
    ("gw1", {"egress_nat_persist": "maybe"}, "gw1: options of the role netkit.egress.egress_nat: "),
    ("gw1", {"gateway_group_failover": "keepalived"},
     "gw1: options of the role netkit.egress.gateway_group: value of gateway_group_failover must be one of: none, "
     "vrrp, got: keepalived"),
    ("gw1", {"gateway_group_vrrp_advert_interval": "fast"}, "gw1: options of the role netkit.egress.gateway_group: "),
])
def test_a_role_option_its_argument_spec_refuses_fails_planning_naming_host_and_option(host, options, words):
    with pytest.raises(InputError) as refused:
        plan_fleet(fleet_hostvars(**{host: options}))
    assert str(refused.value).startswith(words)
    assert next(iter(options)) in str(refused.value)


def test_role_options_the_argument_spec_accepts_plan_as_before():
    accepted = fleet_hostvars(node1={"egress_nat_state": "absent", "egress_nat_route_table_base": "22000",
                                     "egress_nat_persist": "no"},
                              gw1={"gateway_group_failover": "vrrp", "gateway_group_vrrp_advert_interval": 1})
    assert plan_fleet(accepted) == plan_fleet(fleet_hostvars())
    # gateway_group's options are a gateway node's: a cluster node's are not its business.
    assert plan_fleet(fleet_hostvars(node1={"gateway_group_failover": "whatever"}))


def test_a_host_whose_read_failed_fails_planning_an_unreachable_one_is_unavailable():
    failed = fleet_hostvars(gw1={"egress_nat_held": {"failed": True, "msg": "ip: command not found"}})
    with pytest.raises(InputError, match=r"^gw1: reading the floating IPs it holds, its addresses and default routes "
                                         r"failed: ip: command not found$"):
        plan_fleet(failed)
    down = fleet_hostvars(gw1={"egress_nat_held": {"unreachable": True, "msg": "no such namespace"}})
    assert plan_fleet(down)["unavailable_reasons"]["gw1"]["reason"] == "Unreachable"
