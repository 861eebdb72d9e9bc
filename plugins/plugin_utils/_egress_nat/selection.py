# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which workloads a policy's sources select (pure): namespaces and workloads read once into typed
objects, then Kubernetes label-selector semantics (entries OR'ed; namespace and pod selector of one entry
AND'ed)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.netkit.egress.plugins.module_utils import _net
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import fields
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.inventory import read_policy
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.objects import Workload

WORKLOAD_DEFAULT_NAMESPACE = "default"
# Kubernetes adds this label to every namespace; selectors in the wild rely on it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def selector_matches(selector, labels):
    return selector.matches(labels)


def read_namespaces(namespaces):
    """Namespace name -> its labels (with the implicit ``kubernetes.io/metadata.name``)."""
    by_name = {}
    for index, raw in enumerate(fields.as_list(namespaces, "namespaces")):
        path = f"namespaces[{index}]"
        entry = fields.as_mapping(raw, path)
        name = fields.object_name(entry.get("name"), f"{path}.name")
        labels = fields.labels(entry.get("labels"), f"{path} ({name}).labels")
        by_name[name] = dict(labels, **{NAMESPACE_NAME_LABEL: name})
    return by_name


def flatten_workloads(workloads):
    """Workloads as one list; a mapping node -> list (``egress_workloads`` per host) is flattened
    with ``node`` set."""
    if isinstance(workloads, Mapping):
        flat = []
        for node, entries in workloads.items():
            for entry in fields.as_list(entries, f"workloads[{node}]"):
                flat.append(dict(fields.as_mapping(entry, f"workloads[{node}]"), node=node))
        return flat
    return fields.as_list(workloads, "workloads")


def read_workloads(workloads):
    typed = []
    for index, raw in enumerate(flatten_workloads(workloads)):
        path = f"workloads[{index}]"
        entry = fields.as_mapping(raw, path)
        path = f"{path} ({entry.get('name', '?')})"
        labels = fields.labels(entry.get("labels"), f"{path}.labels")
        given = entry.get("address")
        items = given if isinstance(given, (list, tuple)) else [given]
        addresses = tuple(fields.address(item, f"{path}.address") for item in items)
        typed.append(Workload(entry.get("name"), entry.get("namespace"), entry.get("node"), labels, addresses))
    return typed


def selected_addresses(policy, namespace_labels, workloads):
    """Sorted addresses of the workloads a policy's sources select. Workloads in namespaces not listed
    have no namespace labels except ``kubernetes.io/metadata.name``."""
    selected = set()
    for workload in workloads:
        namespace = workload.namespace or WORKLOAD_DEFAULT_NAMESPACE
        labels = namespace_labels.get(namespace, {NAMESPACE_NAME_LABEL: namespace})
        if any(source.namespace_selector.matches(labels) and source.pod_selector.matches(workload.labels)
               for source in policy.sources):
            selected.update(workload.addresses)
    return sorted(selected, key=_net.address_value)


def select_workloads(policy, namespaces, workloads):
    """The filter: the same from the inventory's raw shapes."""
    return selected_addresses(read_policy(policy), read_namespaces(namespaces), read_workloads(workloads))
