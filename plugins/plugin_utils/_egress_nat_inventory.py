# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The egress NAT inventory model, controller side: normalise, validate, select, allocate.

Gateway groups and policies arrive either in snake_case or verbatim in the Kubernetes manifest
shape of the GKE guide (``kind: NetworkGatewayGroup`` / ``kind: EgressNATPolicy``). Everything is
normalised to one snake_case shape; every error names the object and the field as the user wrote it.
Pure functions only: the filter plugins wrap them and turn ``InventoryError`` into
``AnsibleFilterError``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

DEFAULT_NAMESPACE = "kube-system"
DEFAULT_GROUP = (DEFAULT_NAMESPACE, "default")
WORKLOAD_DEFAULT_NAMESPACE = "default"
API_GROUP_PREFIX = "networking.gke.io/"
SUPPORTED_ACTIONS = ("SNAT",)
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# Kubernetes adds this label to every namespace; selectors in the wild rely on it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
OBJECT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")

GROUPS_VAR = "network_gateway_groups"
POLICIES_VAR = "egress_nat_policies"
MANIFEST_KEYS = ("kind", "apiVersion", "metadata", "spec")

# (snake_case key, manifest spec key)
GROUP_SPEC_FIELDS = (("floating_ips", "floatingIPs"),)
POLICY_SPEC_FIELDS = (("sources", "sources"), ("destinations", "destinations"),
                      ("excluded_destinations", "excludedDestinations"), ("action", "action"),
                      ("gateway_ref", "gatewayRef"))


class InventoryError(ValueError):
    """Invalid inventory; the message names the object and the field."""


# ---- scalars --------------------------------------------------------------------------------
def _type_name(value):
    return "null" if value is None else type(value).__name__


def parse_address(value, where):
    """An IPv4/IPv6 address without prefix, in canonical text form."""
    if not isinstance(value, str) or "/" in value:
        raise InventoryError(f"{where}: {value!r} is not a valid IP address (no prefix length allowed)")
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise InventoryError(f"{where}: {value!r} is not a valid IP address") from None


def parse_cidr(value, where):
    """A network in CIDR notation (a bare address means a single host), canonical text."""
    text = value.strip() if isinstance(value, str) else None
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except (TypeError, ValueError):
        pass
    try:
        network = ipaddress.ip_network(text, strict=False)
    except (TypeError, ValueError):
        raise InventoryError(f"{where}: {value!r} is not a valid CIDR") from None
    raise InventoryError(f"{where}: {value!r} is not a valid CIDR (host bits set; the network is {network})")


def _object_name(value, where):
    if not isinstance(value, str) or not OBJECT_NAME.fullmatch(value):
        raise InventoryError(f"{where}: {value!r} is not a valid name (1-63 characters of "
                             f"letters, digits, '_', '.', '-')")
    return value


def _list(value, where, required=False):
    if value is None:
        if required:
            raise InventoryError(f"{where}: is required")
        return []
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise InventoryError(f"{where}: expected a list, got {_type_name(value)}")
    return list(value)


def _mapping(value, where):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InventoryError(f"{where}: expected a mapping, got {_type_name(value)}")
    return value


def _reject_unknown(mapping, allowed, where):
    unknown = sorted(str(key) for key in mapping if key not in allowed)
    if unknown:
        raise InventoryError(f"{where}: unknown field(s) {', '.join(unknown)} "
                             f"(allowed: {', '.join(allowed)})")


def _label_value(value, where):
    # YAML turns `enabled: true` and `tier: 1` into non-strings; Kubernetes label values are strings.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise InventoryError(f"{where}: {value!r} is not a valid label value")


def normalise_labels(value, where):
    labels = _mapping(value, where)
    return {str(key): _label_value(item, f"{where}.{key}") for key, item in labels.items()}


# ---- objects in either shape -----------------------------------------------------------------
def is_manifest(raw):
    return isinstance(raw, Mapping) and any(key in raw for key in MANIFEST_KEYS)


def _unpack(raw, where, kind, spec_fields, snake_extra=()):
    """Read an object of either shape: (values by snake_case key, field path by snake_case key)."""
    if not isinstance(raw, Mapping):
        raise InventoryError(f"{where}: expected a mapping, got {_type_name(raw)}")
    if not is_manifest(raw):
        allowed = ("name", "namespace") + tuple(snake for snake, _camel in spec_fields) + snake_extra
        _reject_unknown(raw, allowed, where)
        keys = ("name", "namespace") + tuple(snake for snake, _camel in spec_fields)
        return {key: raw.get(key) for key in keys}, {key: key for key in keys}
    if raw.get("kind", kind) != kind:
        raise InventoryError(f"{where}: kind: expected {kind}, got {raw.get('kind')!r}")
    api_version = raw.get("apiVersion")
    if api_version is not None and not str(api_version).startswith(API_GROUP_PREFIX):
        raise InventoryError(f"{where}: apiVersion: expected {API_GROUP_PREFIX}v1, got {api_version!r}")
    _reject_unknown(raw, MANIFEST_KEYS + ("status",), where)
    metadata = _mapping(raw.get("metadata"), f"{where}: metadata")
    spec = _mapping(raw.get("spec"), f"{where}: spec")
    _reject_unknown(spec, tuple(camel for _snake, camel in spec_fields), f"{where}: spec")
    values = {"name": metadata.get("name"), "namespace": metadata.get("namespace")}
    paths = {"name": "metadata.name", "namespace": "metadata.namespace"}
    for snake, camel in spec_fields:
        values[snake] = spec.get(camel)
        paths[snake] = f"spec.{camel}"
    return values, paths


def _namespace(value, where):
    return DEFAULT_NAMESPACE if value is None else _object_name(value, where)


def _read_group(raw, where):
    """(normalised group, where with name, field path of each floating IP)."""
    values, paths = _unpack(raw, where, "NetworkGatewayGroup", GROUP_SPEC_FIELDS)
    name = _object_name(values["name"], f"{where}: {paths['name']}")
    where = f"{where} ({name})"
    namespace = _namespace(values["namespace"], f"{where}: {paths['namespace']}")
    ips_path = paths["floating_ips"]
    floating_ips, ip_paths, seen = [], [], {}
    for index, value in enumerate(_list(values["floating_ips"], f"{where}: {ips_path}")):
        path = f"{where}: {ips_path}[{index}]"
        address = str(parse_address(value, path))
        if address in seen:
            raise InventoryError(f"{path}: {address} is listed twice in this group "
                                 f"(also {ips_path}[{seen[address]}])")
        seen[address] = index
        floating_ips.append(address)
        ip_paths.append(path)
    group = {"name": name, "namespace": namespace, "floating_ips": floating_ips}
    return group, where, ip_paths


def normalise_group(raw, where="group"):
    return _read_group(raw, where)[0]


def normalise_selector(raw, where):
    """``{match_labels, match_expressions}``; a missing or empty selector matches everything."""
    selector = _mapping(raw, where)
    _reject_unknown(selector, ("matchLabels", "match_labels", "matchExpressions", "match_expressions"),
                    where)
    labels_key = "matchLabels" if "matchLabels" in selector else "match_labels"
    expressions_key = "matchExpressions" if "matchExpressions" in selector else "match_expressions"
    match_labels = normalise_labels(selector.get(labels_key), f"{where}.{labels_key}")
    expressions = []
    for index, raw_expression in enumerate(_list(selector.get(expressions_key),
                                                 f"{where}.{expressions_key}")):
        path = f"{where}.{expressions_key}[{index}]"
        expression = _mapping(raw_expression, path)
        _reject_unknown(expression, ("key", "operator", "values"), path)
        key = expression.get("key")
        if not isinstance(key, str) or not key:
            raise InventoryError(f"{path}.key: {key!r} is not a valid label key")
        operator = expression.get("operator")
        if operator not in SELECTOR_OPERATORS:
            raise InventoryError(f"{path}.operator: {operator!r} is not one of "
                                 f"{', '.join(SELECTOR_OPERATORS)}")
        values = [_label_value(item, f"{path}.values[{i}]")
                  for i, item in enumerate(_list(expression.get("values"), f"{path}.values"))]
        if operator in ("In", "NotIn") and not values:
            raise InventoryError(f"{path}.values: operator {operator} needs at least one value")
        if operator in ("Exists", "DoesNotExist") and values:
            raise InventoryError(f"{path}.values: operator {operator} takes no values")
        expressions.append({"key": key, "operator": operator, "values": values})
    return {"match_labels": match_labels, "match_expressions": expressions}


def _read_source(raw, where):
    source = _mapping(raw, where)
    _reject_unknown(source, ("namespaceSelector", "namespace_selector", "podSelector", "pod_selector"),
                    where)
    namespace_key = "namespaceSelector" if "namespaceSelector" in source else "namespace_selector"
    pod_key = "podSelector" if "podSelector" in source else "pod_selector"
    return {"namespace_selector": normalise_selector(source.get(namespace_key), f"{where}.{namespace_key}"),
            "pod_selector": normalise_selector(source.get(pod_key), f"{where}.{pod_key}")}


def _read_destinations(value, where, required):
    cidrs = []
    for index, entry in enumerate(_list(value, where, required=required)):
        path = f"{where}[{index}]"
        if isinstance(entry, Mapping):
            _reject_unknown(entry, ("cidr",), path)
            entry, path = entry.get("cidr"), f"{path}.cidr"
        cidr = parse_cidr(entry, path)
        if cidr not in cidrs:
            cidrs.append(cidr)
    if required and not cidrs:
        raise InventoryError(f"{where}: at least one destination is required")
    return [{"cidr": cidr} for cidr in cidrs]


def normalise_gateway_ref(raw, where):
    ref = _mapping(raw, where)
    if not ref:
        raise InventoryError(f"{where}: is required (name and namespace of a NetworkGatewayGroup)")
    _reject_unknown(ref, ("name", "namespace"), where)
    return {"name": _object_name(ref.get("name"), f"{where}.name"),
            "namespace": _namespace(ref.get("namespace"), f"{where}.namespace")}


def _read_policy(raw, where):
    """(normalised policy, where with name, field path by snake_case key)."""
    values, paths = _unpack(raw, where, "EgressNATPolicy", POLICY_SPEC_FIELDS)
    name = _object_name(values["name"], f"{where}: {paths['name']}")
    where = f"{where} ({name})"
    sources_path = f"{where}: {paths['sources']}"
    sources = [_read_source(entry, f"{sources_path}[{index}]")
               for index, entry in enumerate(_list(values["sources"], sources_path, required=True))]
    if not sources:
        raise InventoryError(f"{sources_path}: at least one source entry is required "
                             f"(an entry {{}} selects every workload)")
    action = "SNAT" if values["action"] is None else values["action"]
    if action not in SUPPORTED_ACTIONS:
        raise InventoryError(f"{where}: {paths['action']}: {action!r} is not supported "
                             f"(supported: {', '.join(SUPPORTED_ACTIONS)})")
    policy = {
        "name": name,
        "sources": sources,
        "destinations": _read_destinations(values["destinations"], f"{where}: {paths['destinations']}",
                                           required=True),
        "excluded_destinations": _read_destinations(
            values["excluded_destinations"], f"{where}: {paths['excluded_destinations']}", required=False),
        "action": action,
        "gateway_ref": normalise_gateway_ref(values["gateway_ref"], f"{where}: {paths['gateway_ref']}"),
    }
    return policy, where, paths


def normalise_policy(raw, where="policy"):
    return _read_policy(raw, where)[0]


def _objects(value, variable):
    """Entries of an inventory list with their index; ``None`` entries (empty YAML documents) skipped."""
    return [(index, raw) for index, raw in enumerate(_list(value, variable)) if raw is not None]


def normalise_groups(groups, variable=GROUPS_VAR):
    return [normalise_group(raw, f"{variable}[{index}]") for index, raw in _objects(groups, variable)]


# ---- whole-inventory validation --------------------------------------------------------------
def _node_networks(node_addresses, subnet_cidrs):
    """(subnets, {address: node}) from the nodes' ``address/prefix`` strings and extra subnets."""
    subnets, addresses = [], {}
    for node, entries in _mapping(node_addresses, "node_addresses").items():
        if isinstance(entries, str):
            entries = [entries]
        for index, entry in enumerate(_list(entries, f"node_addresses[{node}]")):
            path = f"node_addresses[{node}][{index}]"
            try:
                interface = ipaddress.ip_interface(str(entry).strip())
            except ValueError:
                raise InventoryError(f"{path}: {entry!r} is not a valid address/prefix") from None
            addresses.setdefault(interface.ip, str(node))
            if "/" in str(entry) and interface.network not in subnets:
                subnets.append(interface.network)
    for index, cidr in enumerate(_list(subnet_cidrs, "subnet_cidrs")):
        network = ipaddress.ip_network(parse_cidr(cidr, f"subnet_cidrs[{index}]"))
        if network not in subnets:
            subnets.append(network)
    return subnets, addresses


def _check_floating_ip(address, path, subnets, node_addresses):
    ip = ipaddress.ip_address(address)
    if ip in node_addresses:
        raise InventoryError(f"{path}: {address} is node {node_addresses[ip]}'s own address")
    containing = [subnet for subnet in subnets if ip in subnet]
    if not containing:
        known = ", ".join(str(subnet) for subnet in subnets) or "none"
        raise InventoryError(f"{path}: {address} is not inside any node subnet (node subnets: {known})")
    for subnet in containing:
        edges = (subnet.network_address, subnet.broadcast_address)
        if subnet.version == 4 and subnet.prefixlen < 31 and ip in edges:
            raise InventoryError(f"{path}: {address} is the network or broadcast address of {subnet}")


def _check_group_overlaps(located_groups):
    """A floating IP belongs to one group; the guide's pattern of also listing it in kube-system/default
    (the group that reports the allocation of all floating IPs) is allowed."""
    seen_names = {}
    claimed = {}
    for group, where, ip_paths in located_groups:
        key = (group["namespace"], group["name"])
        if key in seen_names:
            raise InventoryError(f"{where}: NetworkGatewayGroup {key[0]}/{key[1]} is defined twice "
                                 f"(also {seen_names[key]})")
        seen_names[key] = where.split(" ")[0]
        if key == DEFAULT_GROUP:
            continue
        for address, path in zip(group["floating_ips"], ip_paths):
            if address in claimed:
                raise InventoryError(f"{path}: {address} is already a floating IP of {claimed[address]}")
            claimed[address] = f"NetworkGatewayGroup {key[0]}/{key[1]}"


def _check_policy_refs(located_policies, groups_by_key):
    seen_names, refs = {}, {}
    for policy, where, paths in located_policies:
        if policy["name"] in seen_names:
            raise InventoryError(f"{where}: policy name {policy['name']} is used twice "
                                 f"(also {seen_names[policy['name']]})")
        seen_names[policy["name"]] = where.split(" ")[0]
        ref = policy["gateway_ref"]
        key = (ref["namespace"], ref["name"])
        field = f"{where}: {paths['gateway_ref']}"
        if key not in groups_by_key:
            raise InventoryError(f"{field}: no NetworkGatewayGroup {key[0]}/{key[1]}")
        if not groups_by_key[key]["floating_ips"]:
            raise InventoryError(f"{field}: NetworkGatewayGroup {key[0]}/{key[1]} has no floating IPs")
        if key in refs:
            raise InventoryError(f"{field}: {key[0]}/{key[1]} is already the gatewayRef of policy "
                                 f"{refs[key]} (each policy needs its own group)")
        refs[key] = policy["name"]


def egress_nat_inventory(groups, policies, node_addresses, subnet_cidrs=None):
    """Validate the whole egress NAT inventory; return ``{groups, policies}`` normalised."""
    located_groups = [_read_group(raw, f"{GROUPS_VAR}[{index}]")
                      for index, raw in _objects(groups, GROUPS_VAR)]
    located_policies = [_read_policy(raw, f"{POLICIES_VAR}[{index}]")
                        for index, raw in _objects(policies, POLICIES_VAR)]
    subnets, addresses = _node_networks(node_addresses, subnet_cidrs)
    for group, _where, ip_paths in located_groups:
        for address, path in zip(group["floating_ips"], ip_paths):
            _check_floating_ip(address, path, subnets, addresses)
    _check_group_overlaps(located_groups)
    groups_by_key = {(group["namespace"], group["name"]): group for group, _w, _p in located_groups}
    _check_policy_refs(located_policies, groups_by_key)
    return {"groups": [group for group, _w, _p in located_groups],
            "policies": [policy for policy, _w, _p in located_policies]}


# ---- first floating IP -----------------------------------------------------------------------
def first_floating_ip(groups, gateway_ref):
    ref = normalise_gateway_ref(gateway_ref, "gatewayRef")
    key = (ref["namespace"], ref["name"])
    for group in normalise_groups(groups):
        if (group["namespace"], group["name"]) == key:
            if not group["floating_ips"]:
                raise InventoryError(f"gatewayRef: NetworkGatewayGroup {key[0]}/{key[1]} has no "
                                     f"floating IPs")
            return group["floating_ips"][0]
    raise InventoryError(f"gatewayRef: no NetworkGatewayGroup {key[0]}/{key[1]}")


# ---- selection -------------------------------------------------------------------------------
def selector_matches(selector, labels):
    """Kubernetes label selector semantics (``NotIn`` also matches when the key is absent)."""
    for key, value in selector["match_labels"].items():
        if labels.get(key) != value:
            return False
    for expression in selector["match_expressions"]:
        key, operator, values = expression["key"], expression["operator"], expression["values"]
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _namespace_labels(namespaces):
    by_name = {}
    for index, raw in enumerate(_list(namespaces, "namespaces")):
        path = f"namespaces[{index}]"
        entry = _mapping(raw, path)
        name = _object_name(entry.get("name"), f"{path}.name")
        labels = normalise_labels(entry.get("labels"), f"{path} ({name}).labels")
        by_name[name] = dict(labels, **{NAMESPACE_NAME_LABEL: name})
    return by_name


def flatten_workloads(workloads):
    """Workloads as one list; a mapping node -> list (``egress_workloads`` per host) is flattened
    with ``node`` set."""
    if isinstance(workloads, Mapping):
        flat = []
        for node, entries in workloads.items():
            for entry in _list(entries, f"workloads[{node}]"):
                flat.append(dict(_mapping(entry, f"workloads[{node}]"), node=node))
        return flat
    return _list(workloads, "workloads")


def _workload_addresses(entry, path):
    raw = entry.get("address")
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    return [parse_address(item, f"{path}.address") for item in items]


def _address_sort_key(address):
    return (address.version, int(address))


def select_workloads(policy, namespaces, workloads):
    """Sorted addresses of the workloads a policy's sources select (entries OR'ed; namespace and
    pod selector of one entry AND'ed). Workloads in namespaces not listed have no namespace labels
    except ``kubernetes.io/metadata.name``."""
    normalised = normalise_policy(policy)
    labels_of_namespace = _namespace_labels(namespaces)
    selected = set()
    for index, raw in enumerate(flatten_workloads(workloads)):
        path = f"workloads[{index}]"
        entry = _mapping(raw, path)
        path = f"{path} ({entry.get('name', '?')})"
        namespace = entry.get("namespace") or WORKLOAD_DEFAULT_NAMESPACE
        namespace_labels = labels_of_namespace.get(namespace, {NAMESPACE_NAME_LABEL: namespace})
        pod_labels = normalise_labels(entry.get("labels"), f"{path}.labels")
        addresses = _workload_addresses(entry, path)
        if any(selector_matches(source["namespace_selector"], namespace_labels)
               and selector_matches(source["pod_selector"], pod_labels)
               for source in normalised["sources"]):
            selected.update(addresses)
    return [str(address) for address in sorted(selected, key=_address_sort_key)]


# ---- allocation ------------------------------------------------------------------------------
def floating_ip_order(groups):
    """Every floating IP once, in order of first appearance; kube-system/default's list first."""
    normalised = normalise_groups(groups)
    normalised.sort(key=lambda group: (group["namespace"], group["name"]) != DEFAULT_GROUP)
    ordered = []
    for group in normalised:
        ordered.extend(address for address in group["floating_ips"] if address not in ordered)
    return ordered


def _floating_ip_list(floating_ips):
    entries = _list(floating_ips, "floating_ips")
    if entries and all(isinstance(entry, Mapping) for entry in entries):
        return floating_ip_order(entries)
    ordered = []
    for index, value in enumerate(entries):
        address = str(parse_address(value, f"floating_ips[{index}]"))
        if address not in ordered:
            ordered.append(address)
    return ordered


def _canonical_holders(current_holders):
    holders = {}
    for address, node in _mapping(current_holders, "current_holders").items():
        if node is not None:
            holders[str(parse_address(address, f"current_holders[{address}]"))] = str(node)
    return holders


def allocate_floating_ips(floating_ips, gateway_nodes, current_holders=None, unavailable=None):
    """Floating IP -> gateway node: deterministic, balanced (counts differ by at most one), sticky
    (an IP stays with an available current holder as long as balance allows), and only on
    available nodes. Ties go to the node listed first in ``gateway_nodes``."""
    addresses = _floating_ip_list(floating_ips)
    down = {str(node) for node in _list(unavailable, "unavailable")}
    nodes = []
    for node in _list(gateway_nodes, "gateway_nodes"):
        if str(node) not in down and str(node) not in nodes:
            nodes.append(str(node))
    if not addresses:
        return {}
    if not nodes:
        raise InventoryError("gateway_nodes: no gateway node is available for the floating IPs "
                             f"{', '.join(addresses)} (unavailable: {', '.join(sorted(down)) or 'none'})")
    holders = _canonical_holders(current_holders)
    base, extra = divmod(len(addresses), len(nodes))
    counts = {node: 0 for node in nodes}
    full_nodes = 0
    allocation = {}

    def has_room(node):
        return counts[node] < base or (counts[node] == base and full_nodes < extra)

    def assign(address, node):
        nonlocal full_nodes
        allocation[address] = node
        counts[node] += 1
        if counts[node] == base + 1:
            full_nodes += 1

    for address in addresses:
        holder = holders.get(address)
        if holder in counts and has_room(holder):
            assign(address, holder)
    for address in addresses:
        if address not in allocation:
            assign(address, min(nodes, key=lambda node: counts[node]))
    return {address: allocation[address] for address in addresses}
