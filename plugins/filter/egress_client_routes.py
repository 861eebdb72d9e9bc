# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mesh clients' routes filters (documented in ``egress_client_routes.yml`` and ``egress_mesh_plan.yml``
next to this file).

The logic lives in ``plugin_utils/_egress_client_routes.py``; this file only adapts errors.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_client_routes import client_routes, mesh_plan
from ansible_collections.netkit.egress.plugins.plugin_utils._role_options import check_options, set_options

# The role variables mesh_plan validates itself, with the module's model (messages naming the element).
MESH_PLANNED_OPTIONS = frozenset(("egress_gateway_ranges", "egress_gateway_excluded_ranges", "egress_gateway_networks"))


def egress_client_routes(gateways, addresses, interface, metric=100, member_addresses=None, internet=True):
    try:
        return client_routes(gateways, addresses, interface, metric, member_addresses or [], internet=internet)
    except InputError as exc:
        raise AnsibleFilterError(f"egress_client_routes: {exc}") from exc


def egress_mesh_plan(gateways, members, hostvars=None):
    """``hostvars`` given: every other role option of each gateway is checked against the role's argument
    spec too, once for the whole mesh, so that the playbook skips ansible's check of the role on each gateway."""
    try:
        result = mesh_plan(gateways, members)
    except InputError as exc:
        raise AnsibleFilterError(f"egress_mesh_plan: {exc}") from exc
    for gateway in gateways if hostvars is not None else ():
        try:
            check_options(gateway, "egress_gateway", set_options(hostvars[gateway], "egress_gateway",
                                                                 MESH_PLANNED_OPTIONS))
        except InputError as exc:
            result["problems"].append(str(exc))
    return result


class FilterModule:
    """netkit.egress mesh client filters."""

    def filters(self):
        return {"egress_client_routes": egress_client_routes, "egress_mesh_plan": egress_mesh_plan}
