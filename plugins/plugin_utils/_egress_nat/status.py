# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The egress NAT status, as ``kubectl get -o yaml`` would print the objects (pure): the plan plus what
the hosts reported."""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.objects import DEFAULT_GROUP

API_VERSION = "networking.gke.io/v1"


def _sources_text(sources, limit=5):
    shown = ", ".join(sources[:limit])
    return shown + (f" and {len(sources) - limit} more" if len(sources) > limit else "")


def overlap_conditions(policy):
    """Kubernetes-style conditions naming the winner where policies overlap (the name that sorts first)."""
    conditions = []
    for part in policy.get("shadowed_by") or []:
        conditions.append({
            "type": "Shadowed", "status": "True", "reason": "OverlapsEarlierPolicy", "winner": part["policy"],
            "message": f"policy {part['policy']} wins (its name sorts first): traffic from "
                       f"{_sources_text(part['sources'])} to {', '.join(part['destinations'])} leaves as "
                       f"{part['egress_ip']}, not {policy['egress_ip']}"})
    for part in policy.get("shadows") or []:
        conditions.append({
            "type": "Overlapping", "status": "True", "reason": "WinsOverLaterPolicy", "winner": policy["name"],
            "message": f"this policy wins over policy {part['policy']} (its name sorts first) for traffic from "
                       f"{_sources_text(part['sources'])} to {', '.join(part['destinations'])}"})
    return conditions


def gateway_nodes(plan):
    """Gateway node -> ``Up`` or ``Down``, and a condition per node that gets no floating IP in this run
    (unreachable, uplink down, gateway_group_state absent) naming why."""
    reasons = plan.get("unavailable_reasons") or {}
    nodes = {name: "Down" if name in reasons else "Up" for name in plan.get("floating_ips_by_node") or {}}
    conditions = [{"type": "GatewayNodeUnavailable", "status": "True", "node": name, "reason": why["reason"],
                   "message": f"{name}: {why['message']}; its floating IPs are held by the other gateway nodes"}
                  for name, why in reasons.items()]
    return nodes, conditions


def status_report(plan, held, applied):
    """Objects like ``kubectl get -o yaml`` prints, with a status read from the hosts.

    ``held``: floating IP -> gateway node that holds it now; ``applied``: policy name -> gateway nodes
    whose datapath has it. The status of kube-system/default lists every floating IP, as in GKE, and every
    gateway node (``Up``/``Down``, with a condition naming why a node is down).
    """
    group_objects = []
    nodes, node_conditions = gateway_nodes(plan)
    for group in plan["groups"]:
        group_status = {}
        if (group["namespace"], group["name"]) == DEFAULT_GROUP:
            shown = dict(sorted(held.items()))
            for address in plan["allocation"]:
                shown.setdefault(address, "unassigned")
            group_status = {"nodes": nodes, **({"conditions": node_conditions} if node_conditions else {})}
        else:
            shown = {address: held.get(address, "unassigned") for address in group["floating_ips"]}
        group_objects.append({
            "kind": "NetworkGatewayGroup", "apiVersion": API_VERSION,
            "metadata": {"name": group["name"], "namespace": group["namespace"]},
            "spec": {"floatingIPs": group["floating_ips"]},
            "status": {"floatingIPs": shown, **group_status},
        })
    policy_objects = []
    for policy in plan["policies"]:
        if not policy["sources"]:
            state = "NoSourcesSelected"
        elif policy.get("fully_shadowed"):
            state = "Shadowed"
        elif policy["name"] in applied and held.get(policy["egress_ip"]):
            state = "PartiallyShadowed" if policy.get("shadowed_by") else "Applied"
        else:
            state = "NotApplied"
        conditions = overlap_conditions(policy)
        policy_objects.append({
            "kind": "EgressNATPolicy", "apiVersion": API_VERSION,
            "metadata": {"name": policy["name"]},
            "spec": {"gatewayRef": policy["gateway_ref"], "destinations": policy["destinations"],
                     "excludedDestinations": policy["excluded_destinations"]},
            "status": {"egressSourceIP": policy["egress_ip"],
                       "gatewayNode": held.get(policy["egress_ip"], "unassigned"),
                       "selectedSources": policy["sources"],
                       "selectedWorkloads": [w["name"] for w in policy["source_workloads"]],
                       "state": state,
                       **({"conditions": conditions} if conditions else {})},
        })
    return {"networkGatewayGroups": group_objects, "egressNATPolicies": policy_objects}
