# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The egress NAT status, as ``kubectl get -o yaml`` would print the objects (pure): the plan plus what
the hosts reported."""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat.objects import DEFAULT_GROUP

API_VERSION = "networking.gke.io/v1"


def status_report(plan, held, applied):
    """Objects like ``kubectl get -o yaml`` prints, with a status read from the hosts.

    ``held``: floating IP -> gateway node that holds it now; ``applied``: policy name -> gateway nodes
    whose datapath has it. The status of kube-system/default lists every floating IP, as in GKE.
    """
    group_objects = []
    for group in plan["groups"]:
        if (group["namespace"], group["name"]) == DEFAULT_GROUP:
            shown = dict(sorted(held.items()))
            for address in plan["allocation"]:
                shown.setdefault(address, "unassigned")
        else:
            shown = {address: held.get(address, "unassigned") for address in group["floating_ips"]}
        group_objects.append({
            "kind": "NetworkGatewayGroup", "apiVersion": API_VERSION,
            "metadata": {"name": group["name"], "namespace": group["namespace"]},
            "spec": {"floatingIPs": group["floating_ips"]},
            "status": {"floatingIPs": shown},
        })
    policy_objects = []
    for policy in plan["policies"]:
        if not policy["sources"]:
            state = "NoSourcesSelected"
        elif policy["name"] in applied and held.get(policy["egress_ip"]):
            state = "Applied"
        else:
            state = "NotApplied"
        policy_objects.append({
            "kind": "EgressNATPolicy", "apiVersion": API_VERSION,
            "metadata": {"name": policy["name"]},
            "spec": {"gatewayRef": policy["gateway_ref"], "destinations": policy["destinations"],
                     "excludedDestinations": policy["excluded_destinations"]},
            "status": {"egressSourceIP": policy["egress_ip"],
                       "gatewayNode": held.get(policy["egress_ip"], "unassigned"),
                       "selectedSources": policy["sources"],
                       "selectedWorkloads": [w["name"] for w in policy["source_workloads"]],
                       "state": state},
        })
    return {"networkGatewayGroups": group_objects, "egressNATPolicies": policy_objects}
