#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: egress_routes
short_description: Manage the routes netkit.egress owns (routes carrying its routing protocol number)
description:
  - Adds, replaces and removes routes in one route table, all in one C(ip -batch) run.
  - Owns only routes that carry the routing protocol number O(protocol) (C(proto 201) by default). Routes
    with any other protocol are never changed or removed, even to the same destination.
  - A route's identity in a table is its destination and metric, as for the kernel's C(ip route replace).
    When a route of another protocol already holds a wanted destination and metric, the module fails
    rather than replace it.
  - Compares the kernel's canonical form (C(ip -j route show)), so a second run reports no change.
  - Every input is validated before anything is changed; a bad value fails with an error naming the
    field (for example C(routes[2].destination)) and leaves the host as it was.
  - Used by the role P(netkit.egress.egress_client#role) to route members of a network to egress gateways.
version_added: 0.1.0
author:
  - netkit.egress developers (@netkit)
options:
  routes:
    description:
      - The routes. Each is a dict with C(destination) (CIDR, required; host bits are cleared), C(via)
        (next hop of the same address family), C(dev) (outgoing interface, optional; required with a
        link-local C(via)) and C(metric) (optional, default O(metric)).
      - At least one of C(via) and C(dev) is needed, except with O(state=absent) (routes to remove are
        matched by destination and metric).
      - The elements are dicts; they are declared C(raw) so that a wrong element is refused by the module
        with the index of the element in the error, instead of a generic conversion error.
    type: list
    elements: raw
    default: []
  metric:
    description:
      - Metric of routes that do not set their own.
      - For IPv6 the kernel stores metric 0 as 1024, so 0 is treated as 1024 there.
    type: int
    default: 100
  table:
    description:
      - Route table, C(main) or a number (not 255, the kernel's local table).
    type: str
    default: main
  protocol:
    description:
      - Routing protocol number that marks routes as owned by this module (5-255; 0-4 belong to the
        kernel).
    type: int
    default: 201
  state:
    description:
      - V(present) adds these routes or replaces ours with the same destination and metric; other routes
        of ours stay.
      - V(absent) removes these routes (matched by destination and metric) if they are ours.
      - V(exact) makes our routes in O(table) exactly these, removing ours that are not listed.
      - V(gathered) only reads our routes in O(table); the result's RV(routes) is valid input again.
    type: str
    choices: [present, absent, exact, gathered]
    default: present
attributes:
  check_mode:
    support: full
    description: Reads the routes and reports what would change without changing anything.
  diff_mode:
    support: full
    description: Returns our routes before and after.
  platform:
    support: full
    platforms: linux
    description: Linux with iproute2 (C(ip -j)).
notes:
  - Needs only Python's standard library and C(ip) on the managed host.
seealso:
  - module: netkit.egress.egress_gateway
"""

EXAMPLES = r"""
- name: Route the office ranges through the egress gateway
  netkit.egress.egress_routes:
    routes:
      - {destination: 192.168.50.0/24, via: 10.100.0.1, dev: nm0}
      - {destination: "2001:db8:50::/64", via: "fd00:100::1", dev: nm0}
    state: exact

- name: Remove one route (only if netkit.egress created it)
  netkit.egress.egress_routes:
    routes:
      - {destination: 192.168.50.0/24}
    state: absent

- name: Show our routes
  netkit.egress.egress_routes:
    state: gathered
  register: our_routes
"""

RETURN = r"""
routes:
  description: Our routes in O(table) after the run (predicted in check mode), sorted.
  returned: always
  type: list
  elements: dict
  sample: [{destination: 192.168.50.0/24, via: 10.100.0.1, dev: nm0, metric: 100}]
added:
  description: Routes added or replaced (as requested).
  returned: always
  type: list
  elements: dict
removed:
  description: Our routes removed or replaced (as they were in the kernel).
  returned: always
  type: list
  elements: dict
commands:
  description: The C(ip -batch) lines applied (or that would be applied in check mode).
  returned: always
  type: list
  elements: str
  sample: ["route replace 192.168.50.0/24 via 10.100.0.1 dev nm0 metric 100 table main proto 201"]
diff:
  description: Our routes before and after, one per line.
  returned: when diff mode is on
  type: dict
"""

import ipaddress

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netkit.egress.plugins.module_utils._host import Host, HostError, HostLock
from ansible_collections.netkit.egress.plugins.module_utils._routes import (
    RouteError, plan_routes, render_commands, render_undo, routes_as_dicts, sort_routes, split_kernel_routes,
    validate_metric,
    validate_protocol, validate_routes, validate_table)

ARGUMENT_SPEC = dict(
    # dicts, validated (with the index of a bad element in the error) by _routes.validate_routes
    routes=dict(type="list", elements="raw", default=[]),
    metric=dict(type="int", default=100),
    table=dict(type="str", default="main"),
    protocol=dict(type="int", default=201),
    state=dict(type="str", choices=["present", "absent", "exact", "gathered"], default="present"),
)


def read_table(host, table, protocol):
    """(ours, foreign) routes of both families; a table that does not exist yet is empty."""
    ours, foreign = [], []
    for family in ("ipv4", "ipv6"):
        try:
            entries = host.ip_json("-N", "route", "show", "table", table, family=family)
        except HostError as exc:
            if "table does not exist" not in str(exc):
                raise
            entries = []
        family_ours, family_foreign = split_kernel_routes(entries, family, protocol)
        ours += family_ours
        foreign += family_foreign
    return ours, foreign


def check_devices_exist(host, routes):
    links = set(host.link_names())
    for index, route in enumerate(routes):
        if route.dev and route.dev not in links:
            raise RouteError(f"routes[{index}].dev: {route.dev!r} does not exist on the host")


def check_next_hops_on_link(host, routes, to_add):
    """The kernel refuses a next hop it cannot reach directly; find that before changing anything,
    because ``ip -batch`` stops at the first failing line and would leave half the changes."""
    wanted = set(to_add)
    for index, route in enumerate(routes):
        if route not in wanted or not route.via or ipaddress.ip_address(route.via).is_link_local:
            continue
        answer = host.route_get(route.via, route.family)
        if answer is None or answer.get("type", "unicast") != "unicast" or answer.get("gateway"):
            raise RouteError(f"routes[{index}].via: {route.via} is not on a directly connected network")
        if route.dev and answer.get("dev") != route.dev:
            raise RouteError(f"routes[{index}].via: {route.via} is reached through {answer.get('dev')}, "
                             f"not through dev {route.dev}")


def predict_devices(host, routes, to_add):
    """The kernel fills in the device of a route given only ``via``: predict it the same way
    (``ip route get VIA``), so that check mode reports what the real run will."""
    wanted = set(to_add)
    predicted = []
    for route in routes:
        if route in wanted and route.dev is None and route.via:
            answer = host.route_get(route.via, route.family) or {}
            route = route._replace(dev=answer.get("dev"))
        predicted.append(route)
    return predicted


def diff_text(routes):
    return "".join(f"{r.destination} via {r.via or '-'} dev {r.dev or '-'} metric {r.metric}\n"
                   for r in sort_routes(routes))


def run(module):
    params = module.params
    host = Host(module)
    state = params["state"]
    table = validate_table(params["table"])
    protocol = validate_protocol(params["protocol"])
    validate_metric(params["metric"], "metric")
    desired = (validate_routes(params["routes"], params["metric"], require_next_hop=state != "absent")
               if state != "gathered" else [])
    if state in ("present", "exact"):
        check_devices_exist(host, desired)

    ours, foreign = read_table(host, table, protocol)
    plan = plan_routes(desired, ours, foreign, state)
    if state in ("present", "exact"):
        check_next_hops_on_link(host, desired, plan.add)
    commands = render_commands(plan, table, protocol)
    changed = bool(commands)
    after = predict_devices(host, plan.after, plan.add)
    if changed and not module.check_mode:
        try:
            host.ip_batch(commands)
        except HostError as exc:
            problem = host.ip_undo(render_undo(plan, ours, table, protocol))
            raise HostError(f"{exc}; " + (f"rolling back failed too: {problem}" if problem else
                                          "the routes changed before it were rolled back")) from None
        after = sort_routes(read_table(host, table, protocol)[0])

    result = dict(changed=changed, routes=routes_as_dicts(after), added=routes_as_dicts(plan.add),
                  removed=routes_as_dicts(plan.remove), commands=commands)
    if module._diff:
        result["diff"] = dict(before=diff_text(ours), after=diff_text(after))
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        # Two runs against one host must not interleave their read-plan-apply.
        with HostLock():
            result = run(module)
    except (RouteError, HostError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
