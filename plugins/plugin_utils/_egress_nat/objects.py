# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The egress NAT inventory as typed objects: what ``inventory`` and ``selection`` read once, and every
later step (allocation, the plan) works on. Addresses and CIDRs are canonical texts (``_net``);
``to_dict`` gives the snake_case shape the filters return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

DEFAULT_GROUP = ("kube-system", "default")


@dataclass(frozen=True)
class GatewayGroup:
    name: str
    namespace: str
    floating_ips: tuple
    where: str = field(default="", compare=False)  # "network_gateway_groups[0] (default)", for errors
    ip_paths: tuple = field(default=(), compare=False)  # the field path of each floating IP

    @property
    def key(self):
        return (self.namespace, self.name)

    def to_dict(self):
        return {"name": self.name, "namespace": self.namespace, "floating_ips": list(self.floating_ips)}


@dataclass(frozen=True)
class GatewayRef:
    name: str
    namespace: str

    @property
    def key(self):
        return (self.namespace, self.name)

    def to_dict(self):
        return {"name": self.name, "namespace": self.namespace}


@dataclass(frozen=True)
class Expression:
    key: str
    operator: str
    values: tuple

    def to_dict(self):
        return {"key": self.key, "operator": self.operator, "values": list(self.values)}


@dataclass(frozen=True)
class Selector:
    """A Kubernetes label selector; empty matches everything."""
    match_labels: dict
    match_expressions: tuple

    def matches(self, labels):
        """Kubernetes semantics (``NotIn`` also matches when the key is absent)."""
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        for expression in self.match_expressions:
            present = expression.key in labels
            if expression.operator == "In" and not (present and labels[expression.key] in expression.values):
                return False
            if expression.operator == "NotIn" and present and labels[expression.key] in expression.values:
                return False
            if expression.operator == "Exists" and not present:
                return False
            if expression.operator == "DoesNotExist" and present:
                return False
        return True

    def to_dict(self):
        return {"match_labels": dict(self.match_labels),
                "match_expressions": [expression.to_dict() for expression in self.match_expressions]}


@dataclass(frozen=True)
class Source:
    namespace_selector: Selector
    pod_selector: Selector

    def to_dict(self):
        return {"namespace_selector": self.namespace_selector.to_dict(),
                "pod_selector": self.pod_selector.to_dict()}


@dataclass(frozen=True)
class Policy:
    name: str
    sources: tuple
    destinations: tuple  # canonical CIDR texts, in the order given, each once
    excluded_destinations: tuple
    action: str
    gateway_ref: GatewayRef
    where: str = field(default="", compare=False)  # "egress_nat_policies[0] (name)", for errors
    paths: dict = field(default_factory=dict, compare=False)  # field path as written, by snake_case key

    def to_dict(self):
        return {"name": self.name, "sources": [source.to_dict() for source in self.sources],
                "destinations": [{"cidr": cidr} for cidr in self.destinations],
                "excluded_destinations": [{"cidr": cidr} for cidr in self.excluded_destinations],
                "action": self.action, "gateway_ref": self.gateway_ref.to_dict()}


@dataclass(frozen=True)
class Workload:
    name: Optional[str]  # as given (a workload needs no name)
    namespace: Optional[str]  # as given; selection reads a missing one as "default"
    node: Optional[str]
    labels: dict
    addresses: tuple  # canonical, in the order given
    where: str = field(default="", compare=False)  # "node1: egress_workloads[0] (web)", for errors


@dataclass(frozen=True)
class Link:
    """One interface of a host as its facts show it."""
    name: str
    up: bool  # facts' ``active``: its operstate is not ``down`` (down: disabled, or no carrier)
    addresses: tuple  # (address, _net.Cidr of its subnet) of each address on it, loopback and link-local left out


@dataclass(frozen=True)
class HostReport:
    """What one gateway or cluster node reported in this run (facts), read once."""
    name: str
    gateway: bool  # in egress_nat_gateways (it may hold floating IPs)
    reachable: bool
    addresses: tuple  # every address of its own (canonical), from facts and egress_nat_node_addresses
    networks: tuple  # _net.Cidr of each connected network (facts, loopback left out)
    routers: tuple  # its default gateways (canonical)
    pod_cidrs: tuple  # _net.Cidr of egress_nat_pod_cidrs; empty when not declared
    links: Optional[tuple] = None  # Link of each interface; None when the report has no interface facts
    gateway_state: str = "present"  # gateway_group_state of a gateway node (absent: it holds no floating IP)
    interface: Optional[str] = None  # gateway_group_interface: where its floating IPs go (None: by subnet)


@dataclass(frozen=True)
class Inventory:
    """Groups and policies validated together; nodes: node -> its addresses (canonical, in order)."""
    groups: tuple
    policies: tuple
    nodes: dict

    def to_dict(self):
        return {"groups": [group.to_dict() for group in self.groups],
                "policies": [policy.to_dict() for policy in self.policies]}
