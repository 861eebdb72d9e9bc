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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netkit.egress.plugins.module_utils._egress_routes.model import STATES
from ansible_collections.netkit.egress.plugins.module_utils._egress_routes.run import run
from ansible_collections.netkit.egress.plugins.module_utils._host import HostError
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError

ARGUMENT_SPEC = dict(
    # dicts, validated (with the index of a bad element in the error) by _egress_routes.model.validate_routes
    routes=dict(type="list", elements="raw", default=[]),
    metric=dict(type="int", default=100),
    table=dict(type="str", default="main"),
    protocol=dict(type="int", default=201),
    state=dict(type="str", choices=list(STATES), default="present"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = run(module)
    except (InputError, HostError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
