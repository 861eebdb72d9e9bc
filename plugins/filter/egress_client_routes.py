# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mesh clients' routes filter (documented in ``egress_client_routes.yml`` next to this file).

The logic lives in ``plugin_utils/_egress_client_routes.py``; this file only adapts errors.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.plugin_utils._egress_client_routes import client_routes


def egress_client_routes(gateways, addresses, interface, metric=100):
    try:
        return client_routes(gateways, addresses, interface, metric)
    except InputError as exc:
        raise AnsibleFilterError(f"egress_client_routes: {exc}") from exc


class FilterModule:
    """netkit.egress mesh client filters."""

    def filters(self):
        return {"egress_client_routes": egress_client_routes}
