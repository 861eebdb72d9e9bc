# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which gateway nodes may hold floating IPs in this run, and why the others may not (pure).

A gateway node is unavailable when it did not answer (nothing read), when its ``gateway_group_state`` is
``absent``, or when its uplink is down as the host reported it: the interface its floating IPs go on
(``gateway_group_interface``, else the interface with an address whose subnet contains the floating IP, the
longest prefix, as ``floating_ip`` picks it) is down (disabled, or without carrier), or no interface has an
address in that subnet any more (no route to the nodes' subnet).
"""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils import _net

UNREACHABLE = "Unreachable"
RELEASED = "Released"
UPLINK_DOWN = "UplinkDown"


def carrier_of(address, links, floating_ips):
    """(Link, subnet) of the interface ``address`` goes on: the longest prefix among the interfaces' own
    addresses (a floating IP on an interface is not its own address); None when no subnet contains it."""
    host = _net.cidr_of(address)
    best = None
    for link in links:
        for own, subnet in link.addresses:
            if own not in floating_ips and host in subnet and (best is None or subnet.prefix > best[1].prefix):
                best = (link, subnet)
    return best


def uplink_problem(report, floating_ips):
    """Why the interface that carries the floating IPs on this gateway node cannot carry them, or None (also
    when the report has no interface facts)."""
    if report.links is None:
        return None
    if report.interface is not None:
        link = next((link for link in report.links if link.name == report.interface), None)
        if link is None:
            return f"gateway_group_interface {report.interface} does not exist"
        return None if link.up else f"{link.name} (gateway_group_interface) is down"
    floating = set(floating_ips)
    for address in floating_ips:
        found = carrier_of(address, report.links, floating)
        if found is None:
            return f"no interface has an address in the subnet of floating IP {address}"
        link, subnet = found
        if not link.up:
            return f"{link.name} (the interface of {subnet.text}, where floating IP {address} goes) is down"
    return None


def unavailable_gateways(reports, gateway_hosts, floating_ips):
    """Gateway node -> ``{reason, message}`` of every gateway node that may not hold floating IPs, in the
    order of ``gateway_hosts``."""
    unavailable = {}
    for name in gateway_hosts:
        report = reports.get(name)
        if report is None or not report.reachable:
            unavailable[name] = {"reason": UNREACHABLE, "message": "did not answer in this run (no facts)"}
        elif report.gateway_state == "absent":
            unavailable[name] = {"reason": RELEASED, "message": "gateway_group_state is absent"}
        else:
            problem = uplink_problem(report, floating_ips)
            if problem:
                unavailable[name] = {"reason": UPLINK_DOWN, "message": f"uplink down: {problem}"}
    return unavailable
