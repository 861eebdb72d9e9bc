"""The egress NAT planner: inventory + what the hosts reported -> what each host's modules get."""

import copy

import pytest

from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import plan as planner
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import status

GROUPS = [{"name": "default", "namespace": "kube-system",
           "floating_ips": ["192.168.1.100", "192.168.1.101", "192.168.1.102"]},
          {"name": "gw-v6", "namespace": "kube-system", "floating_ips": ["2001:db8:1::100"]}]
POLICIES = [
    {"name": "frontends", "action": "SNAT", "gateway_ref": {"name": "default", "namespace": "kube-system"},
     "sources": [{"namespace_selector": {"match_labels": {"user": "alice"}},
                  "pod_selector": {"match_labels": {"role": "frontend"}}}],
     "destinations": [{"cidr": "203.0.113.0/24"}, {"cidr": "2001:db8:99::/64"}],
     "excluded_destinations": [{"cidr": "203.0.113.128/25"}]},
    {"name": "v6", "action": "SNAT", "gateway_ref": {"name": "gw-v6"},
     "sources": [{"pod_selector": {"match_labels": {"role": "backend"}}}],
     "destinations": [{"cidr": "2001:db8:99::/64"}]},
]
NAMESPACES = [{"name": "alice-ns", "labels": {"user": "alice"}}]
HOSTS = {
    "gw1": {"reachable": True, "addresses": ["192.168.1.11/24", "2001:db8:1::11/64"], "held": ["192.168.1.101"]},
    "gw2": {"reachable": True, "addresses": ["192.168.1.12/24", "2001:db8:1::12/64"], "held": []},
    "node1": {"reachable": True, "addresses": ["192.168.1.1/24", "2001:db8:1::1/64"], "workloads": [
        {"name": "web", "namespace": "alice-ns", "labels": {"role": "frontend"}, "address": "10.10.1.10"},
        {"name": "db", "namespace": "alice-ns", "labels": {"role": "backend"},
         "address": ["10.10.1.11", "fd00:10:1::11"]}]},
    "node2": {"reachable": True, "addresses": ["192.168.1.2/24"], "workloads": [
        {"name": "web2", "namespace": "alice-ns", "labels": {"role": "frontend"}, "address": "10.10.2.10"}]},
}


def plan(hosts=None, groups=None, policies=None):
    return planner.egress_nat_plan(groups or GROUPS, policies or POLICIES, NAMESPACES, hosts or HOSTS,
                                   ["gw1", "gw2"], ["node1", "node2"])


def test_policy_uses_first_floating_ip_and_selected_sources():
    result = plan()
    frontends = result["policies"][0]
    assert frontends["egress_ip"] == "192.168.1.100"
    assert frontends["sources"] == ["10.10.1.10", "10.10.2.10"]
    assert frontends["destinations"] == ["203.0.113.0/24"]
    assert frontends["excluded_destinations"] == ["203.0.113.128/25"]
    assert frontends["ignored_other_family"] == ["2001:db8:99::/64"]


def test_ipv6_policy_takes_only_ipv6_addresses_of_dual_stack_workloads():
    v6 = plan()["policies"][1]
    assert v6["egress_ip"] == "2001:db8:1::100"
    assert v6["sources"] == ["fd00:10:1::11"]
    assert v6["ignored_other_family"] == ["10.10.1.11"]


def test_each_node_gets_only_its_own_workloads():
    source_config = plan()["source_config"]
    assert [c["sources"] for c in source_config["node1"]] == [["10.10.1.10"], ["fd00:10:1::11"]]
    assert [c["sources"] for c in source_config["node2"]] == [["10.10.2.10"]]


def test_gateways_get_all_sources_and_return_routes_via_the_nodes_of_the_same_family():
    result = plan()
    assert [c["sources"] for c in result["gateway_config"]] == [["10.10.1.10", "10.10.2.10"], ["fd00:10:1::11"]]
    assert result["return_routes"] == [
        {"destination": "10.10.1.10", "via": "192.168.1.1"},
        {"destination": "10.10.2.10", "via": "192.168.1.2"},
        {"destination": "fd00:10:1::11", "via": "2001:db8:1::1"},
    ]


def test_allocation_is_sticky_balanced_and_covers_every_floating_ip():
    result = plan()
    assert result["allocation"]["192.168.1.101"] == "gw1"
    counts = [len(v) for v in result["floating_ips_by_node"].values()]
    assert sorted(counts) == [2, 2]
    assert sorted(result["allocation"]) == sorted(["192.168.1.100", "192.168.1.101", "192.168.1.102",
                                                   "2001:db8:1::100"])


def test_unreachable_gateway_gets_nothing_and_is_reported():
    hosts = copy.deepcopy(HOSTS)
    hosts["gw1"]["reachable"] = False
    result = plan(hosts)
    assert set(result["allocation"].values()) == {"gw2"}
    assert result["unavailable_gateways"] == ["gw1"]
    assert result["floating_ips_by_node"]["gw1"] == []


def test_a_node_address_used_as_floating_ip_is_refused():
    groups = copy.deepcopy(GROUPS)
    groups[0]["floating_ips"].append("192.168.1.2")
    with pytest.raises(InputError, match="192.168.1.2"):
        plan(groups=groups)


def test_unknown_gateway_ref_is_refused_naming_the_policy():
    policies = copy.deepcopy(POLICIES)
    policies[1]["gateway_ref"] = {"name": "nope"}
    with pytest.raises(InputError, match=r"egress_nat_policies\[1\].*nope"):
        plan(policies=policies)


def test_status_report_lists_all_floating_ips_on_the_default_group():
    result = plan()
    report = status.status_report(result, held={"192.168.1.100": "gw2", "192.168.1.101": "gw1"},
                                  applied={"frontends": ["gw1", "gw2"]})
    default, v6 = report["networkGatewayGroups"]
    assert default["status"]["floatingIPs"] == {"192.168.1.100": "gw2", "192.168.1.101": "gw1",
                                                "192.168.1.102": "unassigned", "2001:db8:1::100": "unassigned"}
    assert v6["status"]["floatingIPs"] == {"2001:db8:1::100": "unassigned"}
    frontends, v6_policy = report["egressNATPolicies"]
    assert frontends["status"]["state"] == "Applied"
    assert frontends["status"]["gatewayNode"] == "gw2"
    assert frontends["status"]["selectedWorkloads"] == ["web", "web2"]
    assert v6_policy["status"]["state"] == "NotApplied"
