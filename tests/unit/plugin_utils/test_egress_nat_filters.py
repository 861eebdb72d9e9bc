# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Egress NAT filters: inventory normalisation and validation, first floating IP, selection, allocation."""

from __future__ import annotations

import copy

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.netkit.egress.plugins.filter.egress_nat import FilterModule
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.allocation import allocate_floating_ips
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.inventory import (
    egress_nat_inventory, first_floating_ip, read_selector as normalise_selector)
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.selection import (
    select_workloads, selector_matches)

# The guide's manifests (seeds/003), with its typos corrected: `spec:` with a colon, `-` instead of em
# dashes. Otherwise verbatim.
GUIDE_DEFAULT_GROUP = """\
kind: NetworkGatewayGroup
apiVersion: networking.gke.io/v1
metadata:
  namespace: kube-system
  name: default
spec:
  floatingIPs:
  - 192.168.1.100
  - 192.168.1.101
  - 192.168.1.102
  - 192.168.1.103
  - 192.168.1.104
"""

GUIDE_POLICY = """\
kind: EgressNATPolicy
apiVersion: networking.gke.io/v1
metadata:
  name: alice-paul
spec:
  sources:
  - namespaceSelector:
      matchLabels:
        user: alice
    podSelector:
      matchLabels:
        role: frontend
  - namespaceSelector:
      matchLabels:
        user: paul
    podSelector:
      matchLabels:
        role: frontend
  action: SNAT
  destinations:
  - cidr: 8.8.8.0/24
  gatewayRef:
    name: default
    namespace: kube-system
"""

GUIDE_STATUS_GROUP = """\
kind: NetworkGatewayGroup
apiVersion: networking.gke.io/v1
metadata:
  namespace: kube-system
  name: default
spec:
  floatingIPs:
  - 192.168.1.100
  - 192.168.1.101
  - 192.168.1.102
status:
  floatingIPs:
    192.168.1.100: worker1
    192.168.1.101: worker2
    192.168.1.102: worker1
"""

GUIDE_TRACKING_GROUPS = """\
kind: NetworkGatewayGroup
apiVersion: networking.gke.io/v1
metadata:
  namespace: kube-system
  name: gateway1
spec:
  floatingIPs:
  - 192.168.1.100
---
kind: NetworkGatewayGroup
apiVersion: networking.gke.io/v1
metadata:
  namespace: kube-system
  name: gateway2
spec:
  floatingIPs:
  - 192.168.1.101
---
kind: NetworkGatewayGroup
apiVersion: networking.gke.io/v1
metadata:
  namespace: kube-system
  name: gateway3
spec:
  floatingIPs:
  - 192.168.1.102
"""

NODES = {"worker1": ["192.168.1.1/24"], "worker2": ["192.168.1.2/24"]}
FRONTEND_SOURCE = {"namespace_selector": {"match_labels": {"user": "alice"}},
                   "pod_selector": {"match_labels": {"role": "frontend"}}}


def snake_group(name="default", ips=("192.168.1.100",), namespace="kube-system"):
    return {"name": name, "namespace": namespace, "floating_ips": list(ips)}


def snake_policy(name="p1", ref="default", destinations=("8.8.8.0/24",), **extra):
    policy = {"name": name, "sources": [FRONTEND_SOURCE], "action": "SNAT",
              "destinations": [{"cidr": cidr} for cidr in destinations],
              "gateway_ref": {"name": ref, "namespace": "kube-system"}}
    policy.update(extra)
    return policy


def manifest_policy(name, ref):
    return {"kind": "EgressNATPolicy", "apiVersion": "networking.gke.io/v1", "metadata": {"name": name},
            "spec": {"sources": [{}], "action": "SNAT", "destinations": [{"cidr": "8.8.8.0/24"}],
                     "gatewayRef": {"name": ref, "namespace": "kube-system"}}}


# ---- egress_nat_inventory: both shapes ------------------------------------------------------
def test_guide_manifests_verbatim_normalise():
    groups = list(yaml.safe_load_all(GUIDE_DEFAULT_GROUP))
    policies = list(yaml.safe_load_all(GUIDE_POLICY))
    result = egress_nat_inventory(groups, policies, NODES)
    assert result["groups"] == [{"name": "default", "namespace": "kube-system", "floating_ips": [
        "192.168.1.100", "192.168.1.101", "192.168.1.102", "192.168.1.103", "192.168.1.104"]}]
    policy = result["policies"][0]
    assert policy["name"] == "alice-paul"
    assert policy["destinations"] == [{"cidr": "8.8.8.0/24"}]
    assert policy["excluded_destinations"] == []
    assert policy["action"] == "SNAT"
    assert policy["gateway_ref"] == {"name": "default", "namespace": "kube-system"}
    assert [source["namespace_selector"]["match_labels"] for source in policy["sources"]] == [
        {"user": "alice"}, {"user": "paul"}]
    assert all(source["pod_selector"] == {"match_labels": {"role": "frontend"}, "match_expressions": []}
               for source in policy["sources"])


def test_snake_case_and_manifest_shapes_give_the_same_result():
    snake = egress_nat_inventory(
        [snake_group(ips=["192.168.1.100", "192.168.1.101"])],
        [{"name": "alice-paul", "sources": [
            {"namespace_selector": {"match_labels": {"user": "alice"}},
             "pod_selector": {"match_labels": {"role": "frontend"}}},
            {"namespace_selector": {"match_labels": {"user": "paul"}},
             "pod_selector": {"match_labels": {"role": "frontend"}}}],
          "destinations": [{"cidr": "8.8.8.0/24"}], "action": "SNAT",
          "gateway_ref": {"name": "default", "namespace": "kube-system"}}],
        NODES)
    manifest_group = yaml.safe_load(GUIDE_DEFAULT_GROUP)
    manifest_group["spec"]["floatingIPs"] = ["192.168.1.100", "192.168.1.101"]
    manifest = egress_nat_inventory([manifest_group], [yaml.safe_load(GUIDE_POLICY)], NODES)
    assert snake == manifest


def test_guide_tracking_groups_with_default_group_and_status():
    groups = list(yaml.safe_load_all(GUIDE_STATUS_GROUP)) + list(yaml.safe_load_all(GUIDE_TRACKING_GROUPS))
    policies = [manifest_policy(f"egresspolicy{n}", f"gateway{n}") for n in (1, 2, 3)]
    result = egress_nat_inventory(groups, policies, NODES)
    assert [group["name"] for group in result["groups"]] == ["default", "gateway1", "gateway2", "gateway3"]
    assert [first_floating_ip(groups, policy["gateway_ref"]) for policy in result["policies"]] == [
        "192.168.1.100", "192.168.1.101", "192.168.1.102"]


def test_defaults_namespace_action_and_excluded_destinations():
    result = egress_nat_inventory(
        [{"name": "gw", "floating_ips": ["192.168.1.100"]}],
        [{"name": "p", "sources": [{}], "destinations": ["10.0.0.0/8", {"cidr": "2001:db8::/32"}],
          "excluded_destinations": [{"cidr": "10.1.0.0/16"}], "gateway_ref": {"name": "gw"}}],
        NODES)
    assert result["groups"][0]["namespace"] == "kube-system"
    policy = result["policies"][0]
    assert policy["action"] == "SNAT"
    assert policy["gateway_ref"] == {"name": "gw", "namespace": "kube-system"}
    assert policy["destinations"] == [{"cidr": "10.0.0.0/8"}, {"cidr": "2001:db8::/32"}]
    assert policy["excluded_destinations"] == [{"cidr": "10.1.0.0/16"}]
    empty = {"match_labels": {}, "match_expressions": []}
    assert policy["sources"] == [{"namespace_selector": empty, "pod_selector": empty}]


def test_ipv6_floating_ips_and_subnet_cidrs():
    result = egress_nat_inventory(
        [snake_group(ips=["2001:DB8:1::64", "198.51.100.10"])], [],
        {"n1": ["2001:db8:1::1/64", "198.51.100.1"]}, subnet_cidrs=["198.51.100.0/24"])
    assert result["groups"][0]["floating_ips"] == ["2001:db8:1::64", "198.51.100.10"]


def test_empty_yaml_documents_are_skipped_and_the_input_is_not_modified():
    groups = [None, snake_group()]
    frozen = copy.deepcopy(groups)
    result = egress_nat_inventory(groups, [None], NODES)
    assert len(result["groups"]) == 1 and result["policies"] == []
    assert groups == frozen


# ---- egress_nat_inventory: every validation error names the object and the field ------------
def _groups_with(*groups):
    return list(groups)


INVALID = [
    pytest.param([snake_group(ips=["192.168.1.300"])], [], NODES,
                 "network_gateway_groups[0] (default): floating_ips[0]: '192.168.1.300' is not a valid IP "
                 "address", id="invalid floating IP"),
    pytest.param([snake_group(ips=["192.168.1.100/24"])], [], NODES,
                 "floating_ips[0]: '192.168.1.100/24' is not a valid IP address (no prefix length allowed)",
                 id="floating IP with prefix"),
    pytest.param([yaml.safe_load(GUIDE_DEFAULT_GROUP.replace("192.168.1.104", "10.9.9.9"))], [], NODES,
                 "network_gateway_groups[0] (default): spec.floatingIPs[4]: 10.9.9.9 is not inside any node "
                 "subnet (node subnets: 192.168.1.0/24)", id="outside the node subnet (manifest path)"),
    pytest.param([snake_group(ips=["192.168.1.100", "192.168.1.2"])], [], NODES,
                 "network_gateway_groups[0] (default): floating_ips[1]: 192.168.1.2 is node worker2's own "
                 "address", id="node address"),
    pytest.param([snake_group(ips=["192.168.1.255"])], [], NODES,
                 "floating_ips[0]: 192.168.1.255 is the network or broadcast address of 192.168.1.0/24",
                 id="broadcast address"),
    pytest.param([snake_group(ips=["192.168.1.100", "192.168.1.100"])], [], NODES,
                 "network_gateway_groups[0] (default): floating_ips[1]: 192.168.1.100 is listed twice in this "
                 "group (also floating_ips[0])", id="duplicate within a group"),
    pytest.param([snake_group("a", ["192.168.1.100"]), snake_group("b", ["192.168.1.100"])], [], NODES,
                 "network_gateway_groups[1] (b): floating_ips[0]: 192.168.1.100 is already a floating IP of "
                 "NetworkGatewayGroup kube-system/a", id="duplicate between groups"),
    pytest.param([snake_group("a", ["192.168.1.100"]), snake_group("a", ["192.168.1.101"])], [], NODES,
                 "network_gateway_groups[1] (a): NetworkGatewayGroup kube-system/a is defined twice (also "
                 "network_gateway_groups[0])", id="group name twice in a namespace"),
    pytest.param([{"name": "bad name", "floating_ips": []}], [], NODES,
                 "network_gateway_groups[0]: name: 'bad name' is not a valid name", id="invalid group name"),
    pytest.param([{"kind": "NetworkGatewayGroup", "metadata": {"name": "x"},
                   "spec": {"floatingIps": ["192.168.1.100"]}}], [], NODES,
                 "network_gateway_groups[0]: spec: unknown field(s) floatingIps (allowed: floatingIPs)",
                 id="misspelt manifest field"),
    pytest.param([{"name": "x", "floating_ip": ["192.168.1.100"]}], [], NODES,
                 "network_gateway_groups[0]: unknown field(s) floating_ip", id="misspelt snake field"),
    pytest.param([yaml.safe_load(GUIDE_POLICY)], [], NODES,
                 "network_gateway_groups[0]: kind: expected NetworkGatewayGroup, got 'EgressNATPolicy'",
                 id="policy in the groups list"),
    pytest.param([{"kind": "NetworkGatewayGroup", "apiVersion": "v1", "metadata": {"name": "x"}}], [], NODES,
                 "network_gateway_groups[0]: apiVersion: expected networking.gke.io/v1, got 'v1'",
                 id="wrong apiVersion"),
    pytest.param([snake_group()], [snake_policy(), manifest_policy("alice-paul", "gw9")], NODES,
                 "egress_nat_policies[1] (alice-paul): spec.gatewayRef: no NetworkGatewayGroup kube-system/gw9",
                 id="gatewayRef names no group"),
    pytest.param([snake_group()], [snake_policy(ref="default", gateway_ref=None)], NODES,
                 "egress_nat_policies[0] (p1): gateway_ref: is required", id="gatewayRef missing"),
    pytest.param([snake_group()], [snake_policy(gateway_ref={"name": "default", "nmespace": "x"})], NODES,
                 "egress_nat_policies[0] (p1): gateway_ref: unknown field(s) nmespace", id="gatewayRef typo"),
    pytest.param([snake_group()], [snake_policy("p1"), snake_policy("p2")], NODES,
                 "egress_nat_policies[1] (p2): gateway_ref: kube-system/default is already the gatewayRef of "
                 "policy p1", id="gatewayRef shared by two policies"),
    pytest.param([snake_group(ips=[])], [snake_policy()], NODES,
                 "egress_nat_policies[0] (p1): gateway_ref: NetworkGatewayGroup kube-system/default has no "
                 "floating IPs", id="group without floating IPs"),
    pytest.param([snake_group()], [snake_policy(action="MASQUERADE")], NODES,
                 "egress_nat_policies[0] (p1): action: 'MASQUERADE' is not supported (supported: SNAT)",
                 id="action"),
    pytest.param([snake_group()], [snake_policy(destinations=["8.8.8.0/24", "10.0.0.0/33"])], NODES,
                 "egress_nat_policies[0] (p1): destinations[1].cidr: '10.0.0.0/33' is not a valid CIDR",
                 id="invalid CIDR"),
    pytest.param([snake_group()], [snake_policy(destinations=["8.8.8.8/24"])], NODES,
                 "destinations[0].cidr: '8.8.8.8/24' is not a valid CIDR (host bits set; the network is "
                 "8.8.8.0/24)", id="CIDR with host bits"),
    pytest.param([snake_group()], [snake_policy(excluded_destinations=[{"cidr": "nonsense"}])], NODES,
                 "egress_nat_policies[0] (p1): excluded_destinations[0].cidr: 'nonsense' is not a valid CIDR",
                 id="invalid excluded CIDR"),
    pytest.param([snake_group()], [snake_policy(destinations=[])], NODES,
                 "egress_nat_policies[0] (p1): destinations: at least one destination is required",
                 id="no destinations"),
    pytest.param([snake_group()], [snake_policy(sources=[])], NODES,
                 "egress_nat_policies[0] (p1): sources: at least one source entry is required",
                 id="no sources"),
    pytest.param([snake_group()],
                 [snake_policy(sources=[{"pod_selector": {"match_expressions": [
                     {"key": "tier", "operator": "Equals", "values": ["a"]}]}}])], NODES,
                 "egress_nat_policies[0] (p1): sources[0].pod_selector.match_expressions[0].operator: 'Equals' "
                 "is not one of In, NotIn, Exists, DoesNotExist", id="selector operator"),
    pytest.param([snake_group()],
                 [snake_policy(sources=[{"namespace_selector": {"match_expressions": [
                     {"key": "tier", "operator": "In"}]}}])], NODES,
                 "sources[0].namespace_selector.match_expressions[0].values: operator In needs at least one "
                 "value", id="In without values"),
    pytest.param([snake_group()],
                 [snake_policy(sources=[{"podSelector": {"matchExpressions": [
                     {"key": "tier", "operator": "Exists", "values": ["x"]}]}}])], NODES,
                 "sources[0].podSelector.matchExpressions[0].values: operator Exists takes no values",
                 id="Exists with values"),
    pytest.param([snake_group()], [snake_policy(sources=[{"podselector": {}}])], NODES,
                 "egress_nat_policies[0] (p1): sources[0]: unknown field(s) podselector", id="source typo"),
    pytest.param([snake_group()], [snake_policy("p1"), snake_policy("p1", ref="other")], NODES,
                 "egress_nat_policies[1] (p1): policy name p1 is used twice", id="policy name twice"),
    pytest.param([snake_group()], [], {"worker1": ["192.168.1.1/33"]},
                 "node_addresses[worker1][0]: '192.168.1.1/33' is not a valid address/prefix",
                 id="invalid node address"),
    pytest.param("not a list", [], NODES, "network_gateway_groups: expected a list, got str",
                 id="groups not a list"),
]


@pytest.mark.parametrize("groups, policies, nodes, message", INVALID)
def test_invalid_inventory_is_rejected_naming_the_field(groups, policies, nodes, message):
    with pytest.raises(InputError) as error:
        egress_nat_inventory(groups, policies, nodes)
    assert message in str(error.value)


def test_filter_plugin_raises_ansible_filter_error():
    filters = FilterModule().filters()
    assert set(filters) == {"egress_nat_inventory", "first_floating_ip", "select_workloads",
                            "allocate_floating_ips", "egress_nat_plan", "egress_nat_status"}
    with pytest.raises(AnsibleFilterError, match="no NetworkGatewayGroup kube-system/gw9"):
        filters["first_floating_ip"]([snake_group()], {"name": "gw9"})


# ---- first_floating_ip ------------------------------------------------------------------------
@pytest.mark.parametrize("groups, ref, expected", [
    ([snake_group(ips=["192.168.1.101", "192.168.1.100"])], {"name": "default", "namespace": "kube-system"},
     "192.168.1.101"),
    (list(yaml.safe_load_all(GUIDE_DEFAULT_GROUP)), {"name": "default"}, "192.168.1.100"),
    ([snake_group("gw", ["2001:0db8::0064"], namespace="egress")], {"name": "gw", "namespace": "egress"},
     "2001:db8::64"),
])
def test_first_floating_ip(groups, ref, expected):
    assert first_floating_ip(groups, ref) == expected


@pytest.mark.parametrize("groups, ref, message", [
    ([snake_group()], {"name": "default", "namespace": "other"}, "gatewayRef: no NetworkGatewayGroup other/default"),
    ([snake_group(ips=[])], {"name": "default"}, "NetworkGatewayGroup kube-system/default has no floating IPs"),
    ([snake_group()], {}, "gatewayRef: is required"),
    ([snake_group()], {"namespace": "kube-system"}, "gatewayRef.name: None is not a valid name"),
    ([snake_group()], "default", "gatewayRef: expected a mapping, got str"),
])
def test_first_floating_ip_errors(groups, ref, message):
    with pytest.raises(InputError, match=message):
        first_floating_ip(groups, ref)


# ---- selectors and select_workloads ----------------------------------------------------------
LABELS = {"tier": "web", "env": "prod"}


@pytest.mark.parametrize("selector, matches", [
    ({}, True),
    (None, True),
    ({"matchLabels": {"tier": "web"}}, True),
    ({"matchLabels": {"tier": "db"}}, False),
    ({"matchLabels": {"tier": "web", "env": "dev"}}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "db"]}]}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]}, False),
    ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["web"]}]}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, False),
    ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["web"]}]}, True),
    ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, True),
    ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, False),
    ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, True),
    ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, False),
    ({"match_labels": {"env": "prod"},
      "match_expressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}, True),
    ({"match_labels": {"env": "prod"},
      "match_expressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
])
def test_selector_operators(selector, matches):
    assert selector_matches(normalise_selector(selector, "selector"), LABELS) is matches


NAMESPACES = [{"name": "alice-ns", "labels": {"user": "alice"}},
              {"name": "paul-ns", "labels": {"user": "paul"}},
              {"name": "carol-ns", "labels": {"user": "carol"}}]
WORKLOADS = [
    {"name": "a-front", "namespace": "alice-ns", "labels": {"role": "frontend"}, "address": "10.10.10.1"},
    {"name": "a-back", "namespace": "alice-ns", "labels": {"role": "backend"}, "address": "10.10.10.2"},
    {"name": "p-front", "namespace": "paul-ns", "labels": {"role": "frontend"}, "address": "10.10.9.1"},
    {"name": "c-front", "namespace": "carol-ns", "labels": {"role": "frontend"}, "address": "10.10.10.10"},
    {"name": "u-front", "namespace": "unlisted", "labels": {"role": "frontend"}, "address": "10.10.11.1"},
    {"name": "dual", "namespace": "alice-ns", "labels": {"role": "frontend"},
     "address": ["10.10.10.3", "2001:db8:a::3"]},
]


NOT_ALICE_OR_PAUL = {"key": "user", "operator": "NotIn", "values": ["alice", "paul"]}


@pytest.mark.parametrize("sources, expected", [
    pytest.param(yaml.safe_load(GUIDE_POLICY)["spec"]["sources"],
                 ["10.10.9.1", "10.10.10.1", "10.10.10.3", "2001:db8:a::3"], id="guide: OR of entries"),
    pytest.param([{"podSelector": {"matchLabels": {"role": "frontend"}}}],
                 ["10.10.9.1", "10.10.10.1", "10.10.10.3", "10.10.10.10", "10.10.11.1", "2001:db8:a::3"],
                 id="missing namespaceSelector matches every namespace"),
    pytest.param([{}], ["10.10.9.1", "10.10.10.1", "10.10.10.2", "10.10.10.3", "10.10.10.10", "10.10.11.1",
                        "2001:db8:a::3"], id="empty entry selects everything"),
    pytest.param([{"namespaceSelector": {"matchLabels": {"user": "alice"}},
                   "podSelector": {"matchLabels": {"role": "backend"}}}], ["10.10.10.2"],
                 id="AND of namespace and pod selector"),
    pytest.param([{"namespaceSelector": {"matchExpressions": [NOT_ALICE_OR_PAUL]}}], ["10.10.10.10", "10.10.11.1"],
                 id="NotIn includes unlisted namespaces"),
    pytest.param([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "unlisted"}}}],
                 ["10.10.11.1"], id="implicit namespace name label"),
    pytest.param([{"namespaceSelector": {"matchLabels": {"user": "nobody"}}}], [], id="nothing selected"),
])
def test_select_workloads(sources, expected):
    policy = snake_policy(sources=sources)
    assert select_workloads(policy, NAMESPACES, WORKLOADS) == expected


def test_select_workloads_accepts_the_manifest_shape_and_per_node_workloads():
    per_node = {"node1": WORKLOADS[:3], "node2": WORKLOADS[3:]}
    assert select_workloads(yaml.safe_load(GUIDE_POLICY), NAMESPACES, per_node) == [
        "10.10.9.1", "10.10.10.1", "10.10.10.3", "2001:db8:a::3"]


def test_select_workloads_error_names_the_workload():
    bad = WORKLOADS + [{"name": "broken", "namespace": "alice-ns", "address": "10.10.10.300"}]
    with pytest.raises(InputError, match=r"workloads\[6\] \(broken\).address: '10.10.10.300' is not a valid"):
        select_workloads(snake_policy(), NAMESPACES, bad)


# ---- allocate_floating_ips -------------------------------------------------------------------
IPS = [f"192.168.1.{100 + n}" for n in range(5)]


@pytest.mark.parametrize("ips, nodes, holders, unavailable, expected", [
    pytest.param(IPS[:3], ["gw1", "gw2"], None, None,
                 {IPS[0]: "gw1", IPS[1]: "gw2", IPS[2]: "gw1"}, id="round robin in node order"),
    pytest.param(IPS[:3], ["gw1", "gw2"], {IPS[0]: "gw2", IPS[1]: "gw1"}, None,
                 {IPS[0]: "gw2", IPS[1]: "gw1", IPS[2]: "gw1"}, id="sticky"),
    pytest.param(IPS[:3], ["gw1", "gw2"], {ip: "gw1" for ip in IPS[:3]}, None,
                 {IPS[0]: "gw1", IPS[1]: "gw1", IPS[2]: "gw2"}, id="stickiness yields to balance"),
    pytest.param(IPS[:3], ["gw1", "gw2"], {IPS[0]: "gw1", IPS[1]: "gw2", IPS[2]: "gw1"}, ["gw1"],
                 {IPS[0]: "gw2", IPS[1]: "gw2", IPS[2]: "gw2"}, id="failover skips an unavailable node"),
    pytest.param(IPS[:2], ["gw1", "gw2"], {IPS[0]: "gw9"}, None,
                 {IPS[0]: "gw1", IPS[1]: "gw2"}, id="holder that is no gateway is ignored"),
    pytest.param([], [], None, None, {}, id="nothing to allocate"),
    pytest.param(list(yaml.safe_load_all(GUIDE_TRACKING_GROUPS)) + list(yaml.safe_load_all(GUIDE_STATUS_GROUP)),
                 ["worker1", "worker2"], None, None,
                 {"192.168.1.100": "worker1", "192.168.1.101": "worker2", "192.168.1.102": "worker1"},
                 id="from groups: default group first, each IP once"),
])
def test_allocate_floating_ips(ips, nodes, holders, unavailable, expected):
    result = allocate_floating_ips(ips, nodes, holders, unavailable)
    assert result == expected
    assert list(result) == list(expected)


def test_allocate_fails_without_available_nodes():
    with pytest.raises(InputError, match="gateway_nodes: no gateway node is available .*unavailable: gw1, gw2"):
        allocate_floating_ips(IPS[:1], ["gw1", "gw2"], unavailable=["gw2", "gw1"])


NODE_NAMES = st.lists(st.sampled_from([f"gw{n}" for n in range(6)]), min_size=1, max_size=6, unique=True)


@settings(max_examples=200, deadline=None)
@given(ip_count=st.integers(min_value=0, max_value=12), nodes=NODE_NAMES, data=st.data())
def test_allocation_properties(ip_count, nodes, data):
    ips = [f"198.51.100.{n + 1}" for n in range(ip_count)]
    unavailable = data.draw(st.lists(st.sampled_from(nodes), max_size=len(nodes) - 1, unique=True))
    holders = data.draw(st.dictionaries(st.sampled_from(ips), st.sampled_from(nodes + ["gone"]))
                        if ips else st.just({}))
    result = allocate_floating_ips(ips, nodes, holders, unavailable)
    available = [node for node in nodes if node not in unavailable]
    assert list(result) == ips
    assert set(result.values()) <= set(available)
    counts = [list(result.values()).count(node) for node in available]
    assert max(counts) - min(counts) <= 1
    # Deterministic, and independent of the order the holders were read in.
    assert allocate_floating_ips(ips, nodes, dict(reversed(list(holders.items()))), unavailable) == result
    # Sticky: as many IPs stay as balance allows.
    base, extra = divmod(len(ips), len(available)) if ips else (0, 0)
    held = {node: sum(1 for ip, holder in holders.items() if holder == node) for node in available}
    best = sum(min(count, base) for count in held.values()) + min(
        extra, sum(1 for count in held.values() if count > base))
    kept = sum(1 for ip, node in result.items() if holders.get(ip) == node)
    assert kept == best
    # Sticky fixed point: allocating again from the result changes nothing.
    assert allocate_floating_ips(ips, nodes, result, unavailable) == result
