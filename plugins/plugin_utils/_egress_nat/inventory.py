# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The egress NAT inventory read once into typed objects (``objects``), and validated as a whole: floating
IPs inside the nodes' subnets and nobody's own address, each in one group, each policy with a group of
its own (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.netkit.egress.plugins.module_utils import _net
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import fields
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.objects import (
    DEFAULT_GROUP, Expression, GatewayGroup, GatewayRef, Inventory, Policy, Selector, Source)

GROUPS_VAR = "network_gateway_groups"
POLICIES_VAR = "egress_nat_policies"
SUPPORTED_ACTIONS = ("SNAT",)
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# (snake_case key, manifest spec key)
GROUP_SPEC_FIELDS = (("floating_ips", "floatingIPs"),)
POLICY_SPEC_FIELDS = (("sources", "sources"), ("destinations", "destinations"),
                      ("excluded_destinations", "excludedDestinations"), ("action", "action"),
                      ("gateway_ref", "gatewayRef"))


# ---- one object ------------------------------------------------------------------------------
def read_group(raw, where="group"):
    values, paths = fields.unpack(raw, where, "NetworkGatewayGroup", GROUP_SPEC_FIELDS)
    name = fields.object_name(values["name"], f"{where}: {paths['name']}")
    where = f"{where} ({name})"
    namespace = fields.namespace(values["namespace"], f"{where}: {paths['namespace']}")
    ips_path = paths["floating_ips"]
    floating_ips, ip_paths, seen = [], [], {}
    for index, value in enumerate(fields.as_list(values["floating_ips"], f"{where}: {ips_path}")):
        path = f"{where}: {ips_path}[{index}]"
        address = fields.address(value, path)
        if address in seen:
            raise InputError(path, problem=f"{address} is listed twice in this group "
                                           f"(also {ips_path}[{seen[address]}])")
        seen[address] = index
        floating_ips.append(address)
        ip_paths.append(path)
    return GatewayGroup(name, namespace, tuple(floating_ips), where, tuple(ip_paths))


def read_selector(raw, where):
    """A missing or empty selector matches everything."""
    selector, (labels_key, expressions_key) = fields.either_case(
        raw, where, (("matchLabels", "match_labels"), ("matchExpressions", "match_expressions")))
    match_labels = fields.labels(selector.get(labels_key), f"{where}.{labels_key}")
    expressions = []
    for index, raw_expression in enumerate(fields.as_list(selector.get(expressions_key),
                                                          f"{where}.{expressions_key}")):
        path = f"{where}.{expressions_key}[{index}]"
        expression = fields.as_mapping(raw_expression, path)
        fields.reject_unknown(expression, ("key", "operator", "values"), path)
        key = expression.get("key")
        if not isinstance(key, str) or not key:
            raise InputError(f"{path}.key", key, "is not a valid label key")
        operator = expression.get("operator")
        if operator not in SELECTOR_OPERATORS:
            raise InputError(f"{path}.operator", operator, f"is not one of {', '.join(SELECTOR_OPERATORS)}")
        values = tuple(fields.label_value(item, f"{path}.values[{position}]")
                       for position, item in enumerate(fields.as_list(expression.get("values"), f"{path}.values")))
        if operator in ("In", "NotIn") and not values:
            raise InputError(f"{path}.values", problem=f"operator {operator} needs at least one value")
        if operator in ("Exists", "DoesNotExist") and values:
            raise InputError(f"{path}.values", problem=f"operator {operator} takes no values")
        expressions.append(Expression(key, operator, values))
    return Selector(match_labels, tuple(expressions))


def _read_source(raw, where):
    source, (namespace_key, pod_key) = fields.either_case(
        raw, where, (("namespaceSelector", "namespace_selector"), ("podSelector", "pod_selector")))
    return Source(read_selector(source.get(namespace_key), f"{where}.{namespace_key}"),
                  read_selector(source.get(pod_key), f"{where}.{pod_key}"))


def _read_destinations(value, where, required):
    cidrs = []
    for index, entry in enumerate(fields.as_list(value, where, required=required)):
        path = f"{where}[{index}]"
        if isinstance(entry, Mapping):
            fields.reject_unknown(entry, ("cidr",), path)
            entry, path = entry.get("cidr"), f"{path}.cidr"
        cidr = fields.cidr(entry, path)
        if cidr not in cidrs:
            cidrs.append(cidr)
    if required and not cidrs:
        raise InputError(where, problem="at least one destination is required")
    return tuple(cidrs)


def read_gateway_ref(raw, where):
    ref = fields.as_mapping(raw, where)
    if not ref:
        raise InputError(where, problem="is required (name and namespace of a NetworkGatewayGroup)")
    fields.reject_unknown(ref, ("name", "namespace"), where)
    return GatewayRef(fields.object_name(ref.get("name"), f"{where}.name"),
                      fields.namespace(ref.get("namespace"), f"{where}.namespace"))


def read_policy(raw, where="policy"):
    values, paths = fields.unpack(raw, where, "EgressNATPolicy", POLICY_SPEC_FIELDS)
    name = fields.object_name(values["name"], f"{where}: {paths['name']}")
    where = f"{where} ({name})"
    sources_path = f"{where}: {paths['sources']}"
    sources = tuple(_read_source(entry, f"{sources_path}[{index}]")
                    for index, entry in enumerate(fields.as_list(values["sources"], sources_path, required=True)))
    if not sources:
        raise InputError(sources_path, problem="at least one source entry is required "
                                               "(an entry {} selects every workload)")
    action = "SNAT" if values["action"] is None else values["action"]
    if action not in SUPPORTED_ACTIONS:
        raise InputError(f"{where}: {paths['action']}", action,
                         f"is not supported (supported: {', '.join(SUPPORTED_ACTIONS)})")
    destinations = _read_destinations(values["destinations"], f"{where}: {paths['destinations']}", required=True)
    excluded = _read_destinations(values["excluded_destinations"], f"{where}: {paths['excluded_destinations']}",
                                  required=False)
    gateway_ref = read_gateway_ref(values["gateway_ref"], f"{where}: {paths['gateway_ref']}")
    return Policy(name, sources, destinations, excluded, action, gateway_ref, where, paths)


def objects_of(value, variable):
    """Entries of an inventory list with their index; ``None`` entries (empty YAML documents) skipped."""
    return [(index, raw) for index, raw in enumerate(fields.as_list(value, variable)) if raw is not None]


def read_groups(groups, variable=GROUPS_VAR):
    return [read_group(raw, f"{variable}[{index}]") for index, raw in objects_of(groups, variable)]


def first_floating_ip_of(groups, ref, field="gatewayRef"):
    """The egress IP of a policy: the first floating IP of the group its gatewayRef names."""
    for group in groups:
        if group.key == ref.key:
            if not group.floating_ips:
                raise InputError(field, problem=f"NetworkGatewayGroup {ref.namespace}/{ref.name} has no "
                                                "floating IPs")
            return group.floating_ips[0]
    raise InputError(field, problem=f"no NetworkGatewayGroup {ref.namespace}/{ref.name}")


# ---- the whole inventory ---------------------------------------------------------------------
def _node_interface(entry, path):
    """(address, its subnet or None) of a node's ``address/prefix`` string."""
    text = str(entry).strip()
    try:
        address = _net.parse_address(text.partition("/")[0], path)
        subnet = _net.parse_cidr(text, path)
    except InputError:
        raise InputError(path, entry, "is not a valid address/prefix") from None
    return address, subnet if "/" in str(entry) else None


def _node_networks(node_addresses, subnet_cidrs):
    """(subnets, {address: node}, {node: addresses}) from the nodes' ``address/prefix`` strings and extra
    subnets."""
    subnets, owners, nodes = [], {}, {}
    for node, entries in fields.as_mapping(node_addresses, "node_addresses").items():
        if isinstance(entries, str):
            entries = [entries]
        addresses = nodes.setdefault(str(node), [])
        for index, entry in enumerate(fields.as_list(entries, f"node_addresses[{node}]")):
            address, subnet = _node_interface(entry, f"node_addresses[{node}][{index}]")
            owners.setdefault(address, str(node))
            addresses.append(address)
            if subnet is not None and subnet not in subnets:
                subnets.append(subnet)
    for index, value in enumerate(fields.as_list(subnet_cidrs, "subnet_cidrs")):
        subnet = _net.cidr_of(fields.cidr(value, f"subnet_cidrs[{index}]"))
        if subnet not in subnets:
            subnets.append(subnet)
    return subnets, owners, {node: tuple(addresses) for node, addresses in nodes.items()}


def _check_floating_ip(address, path, subnets, owners):
    if address in owners:
        raise InputError(path, problem=f"{address} is node {owners[address]}'s own address")
    host = _net.cidr_of(address)
    containing = [subnet for subnet in subnets if host in subnet]
    if not containing:
        known = ", ".join(subnet.text for subnet in subnets) or "none"
        raise InputError(path, problem=f"{address} is not inside any node subnet (node subnets: {known})")
    for subnet in containing:
        if subnet.family == "ipv4" and subnet.prefix < 31 and host.first in (subnet.first, subnet.last):
            raise InputError(path, problem=f"{address} is the network or broadcast address of {subnet.text}")


def _check_group_overlaps(groups):
    """A floating IP belongs to one group; the guide's pattern of also listing it in kube-system/default
    (the group that reports the allocation of all floating IPs) is allowed."""
    seen_names, claimed = {}, {}
    for group in groups:
        namespace, name = group.key
        if group.key in seen_names:
            raise InputError(group.where, problem=f"NetworkGatewayGroup {namespace}/{name} is defined twice "
                                                  f"(also {seen_names[group.key]})")
        seen_names[group.key] = group.where.split(" ")[0]
        if group.key == DEFAULT_GROUP:
            continue
        for address, path in zip(group.floating_ips, group.ip_paths):
            if address in claimed:
                raise InputError(path, problem=f"{address} is already a floating IP of {claimed[address]}")
            claimed[address] = f"NetworkGatewayGroup {namespace}/{name}"


def _check_policy_refs(policies, groups):
    seen_names, refs = {}, {}
    for policy in policies:
        if policy.name in seen_names:
            raise InputError(policy.where, problem=f"policy name {policy.name} is used twice "
                                                   f"(also {seen_names[policy.name]})")
        seen_names[policy.name] = policy.where.split(" ")[0]
        ref = policy.gateway_ref
        field = f"{policy.where}: {policy.paths['gateway_ref']}"
        first_floating_ip_of(groups, ref, field)
        if ref.key in refs:
            raise InputError(field, problem=f"{ref.namespace}/{ref.name} is already the gatewayRef of policy "
                                            f"{refs[ref.key]} (each policy needs its own group)")
        refs[ref.key] = policy.name


def read_inventory(groups, policies, node_addresses, subnet_cidrs=None):
    """The whole egress NAT inventory, validated: an ``Inventory``."""
    group_list = read_groups(groups)
    read_policies = [read_policy(raw, f"{POLICIES_VAR}[{index}]") for index, raw in objects_of(policies, POLICIES_VAR)]
    subnets, owners, nodes = _node_networks(node_addresses, subnet_cidrs)
    for group in group_list:
        for address, path in zip(group.floating_ips, group.ip_paths):
            _check_floating_ip(address, path, subnets, owners)
    _check_group_overlaps(group_list)
    _check_policy_refs(read_policies, group_list)
    return Inventory(tuple(group_list), tuple(read_policies), nodes)


# ---- filters ---------------------------------------------------------------------------------
def egress_nat_inventory(groups, policies, node_addresses, subnet_cidrs=None):
    """Validate the whole egress NAT inventory; return ``{groups, policies}`` normalised."""
    return read_inventory(groups, policies, node_addresses, subnet_cidrs).to_dict()


def first_floating_ip(groups, gateway_ref):
    ref = read_gateway_ref(gateway_ref, "gatewayRef")
    return first_floating_ip_of(read_groups(groups), ref)
