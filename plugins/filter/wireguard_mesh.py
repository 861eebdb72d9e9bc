# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WireGuard mesh filters: the mesh plan and the external clients' configs.

Each filter is documented in its own sidecar file next to this one (``<filter name>.yml``).
The logic lives in ``plugin_utils/_wireguard_mesh.py``; this file only reads hostvars and adapts errors.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.plugin_utils import _wireguard_mesh as planner

HOST_KEYS = ("wireguard_interface", "wireguard_address", "wireguard_endpoint", "wireguard_listen_port",
             "wireguard_persistent_keepalive", "wireguard_mesh_public_key", "wireguard_mesh_ext_client_keys", "wireguard_ingress", "wireguard_ext_clients",
             "wireguard_internet_gateway", "wireguard_fail_open", "wireguard_state", "egress_gateway_ranges",
             "egress_gateway_networks", "egress_gateway_excluded_ranges", "egress_gateway_state")


def _host_vars(hostvars, name):
    source = hostvars[name] if name in hostvars else {}
    return {key: source[key] for key in HOST_KEYS if key in source}


def wireguard_mesh_plan(members, hostvars, egress_hosts=None, ext_client_keys=None):
    members = list(members or [])
    try:
        return planner.plan(members, {name: _host_vars(hostvars, name) for name in members},
                            list(egress_hosts or []), ext_client_keys=ext_client_keys or {})
    except InputError as exc:
        raise AnsibleFilterError(f"wireguard_mesh_plan: {exc}") from exc


def wireguard_ext_client_config(config, private_key):
    try:
        return planner.ext_client_config_text(config, planner.validate_key(private_key.strip(), "private key"))
    except InputError:
        # Never the value in the message: it is a private key.
        raise AnsibleFilterError("wireguard_ext_client_config: the private key is not a WireGuard key") from None


class FilterModule:
    def filters(self):
        return {"wireguard_mesh_plan": wireguard_mesh_plan,
                "wireguard_ext_client_config": wireguard_ext_client_config}
