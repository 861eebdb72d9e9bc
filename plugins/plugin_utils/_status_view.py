# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The status as the hosts see it, as ``kubectl get``-style tables (pure, controller side).

Holders come from the hosts: in VRRP mode the gateway whose keepalived is MASTER for the address and has it
configured, otherwise the gateway whose floating_ip state holds it. The GKE-shaped report is
``_egress_nat.status.status_report`` fed with those holders.
"""

from __future__ import annotations

import time

from ansible_collections.netkit.egress.plugins.plugin_utils._egress_nat import status


def vrrp_holders(vrrp_by_node):
    """address -> [(node, state, since)] of every gateway reporting the instance, MASTERs first."""
    rows = {}
    for node, instances in vrrp_by_node.items():
        for item in instances or []:
            rows.setdefault(item["address"], []).append((node, item.get("state") or "UNKNOWN", item.get("since"),
                                                         bool(item.get("held"))))
    for entries in rows.values():
        entries.sort(key=lambda entry: (entry[1] != "MASTER", entry[0]))
    return rows


def _since(stamp):
    if not stamp:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def table(header, rows):
    """Lines of a left-aligned table, columns two spaces apart (like kubectl get)."""
    widths = [max(len(str(row[index])) for row in [header] + rows) for index in range(len(header))]
    return ["   ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in [header] + rows]


def status_view(plan, held_by_floating_ip, vrrp_by_node, applied, failover):
    """{report: GKE-shaped objects, lines: the tables}."""
    vrrp = vrrp_holders(vrrp_by_node) if failover == "vrrp" else {}
    held = {}
    ip_rows = []
    for address, _allocated in plan["allocation"].items():
        if failover == "vrrp":
            entries = vrrp.get(address, [])
            holding = [entry for entry in entries if entry[1] == "MASTER" and entry[3]]
            holder = ",".join(entry[0] for entry in holding) or "unassigned"
            state = "MASTER" if len(holding) == 1 else ("SPLIT" if holding else "NONE")
            last = max((entry[2] or 0 for entry in entries), default=0)
            backups = ",".join(f"{entry[0]}:{entry[1]}" for entry in entries if entry not in holding) or "-"
        else:
            holder = held_by_floating_ip.get(address, "unassigned")
            state, last, backups = ("Held" if address in held_by_floating_ip else "NONE"), 0, "-"
        if holder != "unassigned":
            held[address] = holder
        ip_rows.append([address, holder, state, _since(last), backups])
    report = status.status_report(plan, held, applied)
    report["failover"] = failover
    policy_rows = []
    for policy in report["egressNATPolicies"]:
        shown = policy["status"]
        policy_rows.append([policy["metadata"]["name"], shown["egressSourceIP"], shown["gatewayNode"],
                            shown["state"], ",".join(shown["selectedWorkloads"]) or "-"])
    lines = [f"FAILOVER: {failover}", ""]
    lines += table(["FLOATING IP", "HOLDER", "STATE", "SINCE", "OTHERS"], ip_rows)
    lines += [""] + table(["POLICY", "EGRESS IP", "GATEWAY NODE", "STATE", "SELECTED WORKLOADS"], policy_rows)
    nodes, _conditions = status.gateway_nodes(plan)
    reasons = plan.get("unavailable_reasons") or {}
    node_rows = [[name, state, reasons.get(name, {}).get("message", "-")] for name, state in nodes.items()]
    if node_rows:
        lines += [""] + table(["GATEWAY NODE", "STATE", "WHY"], node_rows)
    return {"report": report, "lines": lines}
