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


def egress_client_routes(gateways, addresses, interface, metric=100, member_addresses=None, internet=True):
    try:
        return client_routes(gateways, addresses, interface, metric, member_addresses or [], internet=internet)
    except InputError as exc:
        raise AnsibleFilterError(f"egress_client_routes: {exc}") from exc


def egress_mesh_plan(gateways, members):
    try:
        return mesh_plan(gateways, members)
    except InputError as exc:
        raise AnsibleFilterError(f"egress_mesh_plan: {exc}") from exc


class FilterModule:
    """netkit.egress mesh client filters."""

    def filters(self):
        return {"egress_client_routes": egress_client_routes, "egress_mesh_plan": egress_mesh_plan}
