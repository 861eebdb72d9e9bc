#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nat_policy
short_description: Converge the egress NAT datapath of one host (cluster node or gateway node)
description:
  - Manages egress NAT policies on one Linux host, in the network resource module style.
    A policy sends traffic from O(config[].sources) to O(config[].destinations) (minus
    O(config[].excluded_destinations)) out with the source address O(config[].egress_ip),
    usually a floating IP held by one of the gateway nodes.
  - On a cluster node (O(role=source)) the table C(inet netkit_egress_nat) marks new connections
    of selected workloads in prerouting (connection mark, copied to the packet mark), an C(ip rule)
    per egress IP sends marked packets to a route table whose default route's next hop is the egress
    IP itself, so traffic follows the address when it moves between gateway nodes. Marked packets get
    an identity SNAT at priority C(srcnat - 10), so the node's own masquerade does not hide the
    workload address from the gateway.
  - On a gateway node (O(role=gateway)) the same table SNATs a policy's traffic to its egress IP at
    priority C(srcnat - 10), before any other masquerade; replies are de-NATed by conntrack and
    reach the workloads through O(return_routes).
  - Sets, not one rule per address, hold sources and destinations, so 10,000 entries cost one lookup.
  - Nothing the module installs accepts or drops packets; filter rules of others (network policies)
    still decide. It owns only its table, the C(ip rule) entries at its priorities, the routes with
    O(route_protocol) in its route tables (and, on a gateway, in the main table) and the sysctls it
    reports; it never flushes the ruleset or touches foreign rules.
  - The table is replaced in one C(nft -f) transaction (all or nothing); when routing changes that
    packets would notice must go before it, the script is checked with C(nft -c) first. Everything is
    validated before the first change.
  - One policy has one address family; every CIDR in it must have the family of its egress IP
    (write a second policy for the other family).
  - Selectors and gateway references are resolved on the controller (see the role
    C(netkit.egress.egress_nat)); this module takes concrete addresses.
version_added: 0.1.0
author:
  - netkit.egress developers (@netkit)
options:
  config:
    description:
      - The policies. With O(state=deleted), only their names matter, and an empty list means
        every policy this module manages on the host.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Policy name, C(^[A-Za-z0-9_.-]{1,63}$). Appears only in nft rule comments.
        type: str
        required: true
      egress_ip:
        description: The source address the selected traffic leaves with (a floating IP).
        type: str
      sources:
        description: Workload addresses or CIDRs (one address family, that of O(config[].egress_ip)).
        type: list
        elements: str
      destinations:
        description: Destination CIDRs the policy applies to (C(0.0.0.0/0) for everything).
        type: list
        elements: str
      excluded_destinations:
        description: Destination CIDRs left alone even when inside O(config[].destinations).
        type: list
        elements: str
      interface:
        description:
          - On a source node, the interface towards the egress IP; default is the device of
            C(ip route get EGRESS_IP).
          - On a gateway, restricts the SNAT to packets leaving through this interface; default is
            no restriction.
        type: str
  role:
    description: C(source) for cluster nodes with workloads, C(gateway) for nodes that may hold egress IPs.
    type: str
    choices: [source, gateway]
    default: source
  state:
    description:
      - C(merged) adds the given policies or merges them into the held ones (lists grow, given
        scalars replace), keeping other policies.
      - C(replaced) replaces the given policies entirely, keeping other policies.
      - C(overridden) leaves exactly the given policies.
      - C(deleted) removes the given policies, or all of them when O(config) is empty (then also the
        return routes, and sysctls this module changed get their earlier values back).
      - C(gathered) returns the held policies in RV(gathered), valid O(config) again.
      - C(rendered) returns the nft script and C(ip) commands for O(config) in RV(rendered) without
        touching the host.
    type: str
    choices: [merged, replaced, overridden, deleted, gathered, rendered]
    default: merged
  return_routes:
    description:
      - Gateway only. Routes back to the workload addresses, installed in the main table with
        O(route_protocol). When given, exactly these are kept (others with O(route_protocol) in the
        main table are removed); when omitted, the held ones stay.
    type: list
    elements: dict
    suboptions:
      destination:
        description: Workload CIDR.
        type: str
        required: true
      via:
        description: The cluster node that hosts it.
        type: str
        required: true
  route_table_base:
    description: Route table of the first egress IP on a source node; the next ones follow.
    type: int
    default: 21000
  rule_priority_base:
    description:
      - First C(ip rule) priority of a source node. The module owns the priorities from here on that
        O(mark_mask) needs, 8,193 for the default mask and 513 for C(0x00ff0000).
      - The rules are a binary tree of C(goto) rules over the mark, behind one rule that sends unmarked
        packets past them all, so a marked packet passes about two rules per bit of the mask, not one rule
        per egress IP.
    type: int
    default: 21000
  mark_mask:
    description:
      - The packet and connection mark bits this module owns (other bits are left untouched), one run of
        contiguous bits; each egress IP of a source node is one value inside them. An integer or a string like
        C(0x0fff0000), the default, which numbers 4,095 egress IPs.
    type: raw
    default: "0x0fff0000"
  mark_base:
    description:
      - Mark of the first egress IP; the next ones add the lowest bit of O(mark_mask). Must lie
        inside O(mark_mask).
    type: raw
    default: "0x00010000"
  route_protocol:
    description: Routing protocol number that marks our routes.
    type: int
    default: 201
  persist:
    description:
      - Write what brings the datapath back at boot without Ansible, all in O(persist_dir) -
        C(nat_policy.sysctl), C(nat_policy.nft), the rules and routes as C(ip -batch) files C(nat_policy.ipv4) and
        C(nat_policy.ipv6), and the start program C(nat_policy.start) that loads them (what boot runs where
        there is no systemd, as in containers and network namespaces).
      - Where systemd runs (C(/run/systemd/system) exists), also the oneshot unit
        C({systemd_unit_dir}/netkit-egress-nat-policy.service), whose C(ExecStart=) lines are the same commands,
        enabled (after C(network-online.target); C(netkit-egress-keepalived.service) starts after it).
      - When false, or when no policy and no return route is left, those files (and the unit) are removed.
      - Only with O(state) merged, replaced, overridden or deleted.
    type: bool
    default: false
extends_documentation_fragment:
  - netkit.egress.boot
attributes:
  check_mode:
    support: full
    description: Reports the commands and changes a real run would make, and changes nothing.
  diff_mode:
    support: full
    description: Returns the policies, return routes, sysctls and boot files before and after.
  platform:
    support: full
    platforms: linux
    description: Linux with nftables (C(nft)), iproute2 (C(ip)) and C(/proc/sys).
notes:
  - "Sysctls, as measured with real traffic in network namespaces: forwarding is needed on both roles
    (a gateway with forwarding off drops the steered traffic). A source node in strict C(rp_filter)
    mode works as long as its routes to the destinations leave through the interface towards the
    gateway; the module cannot prove that for every destination cheaply, so it sets that one
    interface to loose (2) when it is strict, never C(all). C(src_valid_mark) is deliberately left
    alone: with C(src_valid_mark=1) the reverse-path check of a marked packet uses the mark, finds the
    egress route table, and strict mode on the workload-facing interface then drops every selected
    connection (tested)."
  - "A gateway needs O(return_routes) (or other routes) to the workload addresses: the external side
    has no route to them, and without one the de-NATed replies are lost whatever C(rp_filter) says."
  - Original values of sysctls the module changed are kept in C(/etc/netkit-egress/nat_policy.json).
  - Policies that overlap are applied in the order of their names; the first match wins, with both roles
    (C(source) marks a new connection only when no earlier policy marked it; C(gateway) SNAT rules are
    terminal), so a node steers to the egress IP its gateway translates to.
  - On a gateway node, the module shares the protocol number of its main-table routes with nothing
    else of the collection by default; give O(route_protocol) another value if a host also runs
    another producer of C(proto 201) routes in its main table.
requirements:
  - nftables >= 0.9.3
  - iproute2
"""

EXAMPLES = r"""
- name: Steer pod 10.10.1.5 to the egress IP 192.168.1.100 for the database network
  netkit.egress.nat_policy:
    role: source
    state: overridden
    config:
      - name: db-clients
        egress_ip: 192.168.1.100
        sources: [10.10.1.5]
        destinations: [203.0.113.0/24]
        excluded_destinations: [203.0.113.20/32]

- name: SNAT the same policy on every gateway node, with routes back to the pods
  netkit.egress.nat_policy:
    role: gateway
    state: overridden
    config:
      - name: db-clients
        egress_ip: 192.168.1.100
        sources: [10.10.1.5]
        destinations: [203.0.113.0/24]
        excluded_destinations: [203.0.113.20/32]
    return_routes:
      - {destination: 10.10.1.0/24, via: 192.168.1.1}
    persist: true   # back at boot without Ansible

- name: What is configured here?
  netkit.egress.nat_policy:
    role: source
    state: gathered
  register: held

- name: Remove every policy this module manages
  netkit.egress.nat_policy:
    role: source
    state: deleted
"""

RETURN = r"""
before:
  description: The held policies before the run, in O(config) shape.
  returned: when O(state) is merged, replaced, overridden or deleted
  type: list
  elements: dict
after:
  description: The policies after the run (predicted in check mode), in O(config) shape.
  returned: when O(state) is merged, replaced, overridden or deleted
  type: list
  elements: dict
commands:
  description:
    - What was applied (or would be, in check mode) - the nft script between C(nft -f - <<'EOF') and
      C(EOF), then C(ip) commands, then C(write PATH) / C(remove PATH) for each boot file (O(persist)).
      Empty when nothing changes.
  returned: when O(state) is merged, replaced, overridden or deleted
  type: list
  elements: str
gathered:
  description: The held policies, valid as O(config).
  returned: when O(state=gathered)
  type: list
  elements: dict
return_routes:
  description: The held return routes (O(state=gathered)) or those after the run.
  returned: always, except with O(state=rendered)
  type: list
  elements: dict
rendered:
  description: The nft script and C(ip) commands for O(config), made without touching the host.
  returned: when O(state=rendered)
  type: list
  elements: str
persisted_files:
  description: The boot files (O(persist)) kept up to date by the run; empty without O(persist).
  returned: when O(state) is merged, replaced, overridden or deleted
  type: list
  elements: str
  sample: ["/etc/netkit-egress/nat_policy.ipv4", "/etc/netkit-egress/nat_policy.nft",
           "/etc/netkit-egress/nat_policy.start", "/etc/netkit-egress/nat_policy.sysctl"]
sysctls:
  description: Sysctls the datapath needs, with their value before and after the run.
  returned: when O(state) is merged, replaced, overridden or deleted
  type: dict
  sample: {"net.ipv4.ip_forward": {"before": "0", "after": "1"}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netkit.egress.plugins.module_utils._host import HostError
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy.run import run_nat_policy
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError


def argument_spec():
    policy = dict(
        name=dict(type="str", required=True),
        egress_ip=dict(type="str"),
        sources=dict(type="list", elements="str"),
        destinations=dict(type="list", elements="str"),
        excluded_destinations=dict(type="list", elements="str"),
        interface=dict(type="str"),
    )
    return_route = dict(destination=dict(type="str", required=True), via=dict(type="str", required=True))
    return dict(
        config=dict(type="list", elements="dict", options=policy, default=[]),
        role=dict(type="str", choices=["source", "gateway"], default="source"),
        state=dict(type="str", default="merged",
                   choices=["merged", "replaced", "overridden", "deleted", "gathered", "rendered"]),
        return_routes=dict(type="list", elements="dict", options=return_route),
        route_table_base=dict(type="int", default=21000),
        rule_priority_base=dict(type="int", default=21000),
        mark_mask=dict(type="raw", default="0x0fff0000"),
        mark_base=dict(type="raw", default="0x00010000"),
        route_protocol=dict(type="int", default=201),
        persist=dict(type="bool", default=False),
        persist_dir=dict(type="path", default="/etc/netkit-egress"),
        systemd_unit_dir=dict(type="path", default="/etc/systemd/system"),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = run_nat_policy(module)
    except (InputError, HostError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
