# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Egress NAT filters: inventory validation, first floating IP, workload selection, allocation.

Each filter is documented in its own sidecar file next to this one (``<filter name>.yml``).
The logic lives in ``plugin_utils/_egress_nat_inventory.py``; this file only adapts errors.
"""

from __future__ import annotations

import functools

from ansible.errors import AnsibleFilterError

from ansible_collections.netkit.egress.plugins.plugin_utils import _egress_nat_inventory as inventory


def _filter_errors(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except inventory.InventoryError as exc:
            raise AnsibleFilterError(f"{function.__name__}: {exc}") from exc
    return wrapper


class FilterModule:
    """netkit.egress egress NAT filters."""

    def filters(self):
        return {
            "egress_nat_inventory": _filter_errors(inventory.egress_nat_inventory),
            "first_floating_ip": _filter_errors(inventory.first_floating_ip),
            "select_workloads": _filter_errors(inventory.select_workloads),
            "allocate_floating_ips": _filter_errors(inventory.allocate_floating_ips),
        }
