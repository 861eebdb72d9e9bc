# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A role's options checked against the role's own ``meta/argument_specs.yml``, for many hosts in one call.

Ansible checks a role's options with one task per host. A planner that sees the whole inventory can check
every host's options itself, before any host changes, so that a playbook may skip those tasks
(``rolespec_validate: false``, or a ``tasks_from`` without an entry point) and lose nothing.
"""

from __future__ import annotations

import functools
import os

import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.netkit.egress.plugins.module_utils._net import InputError

ROLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "roles")


@functools.lru_cache(maxsize=None)
def entry_point_options(role, entry_point="main"):
    """The ``options`` of ``entry_point`` in the collection's role ``role``."""
    with open(os.path.join(ROLES_DIR, role, "meta", "argument_specs.yml"), encoding="utf-8") as handle:
        specs = yaml.safe_load(handle)["argument_specs"]
    return specs[entry_point]["options"]


def set_options(host_vars, role, skip=frozenset(), entry_point="main"):
    """The options of ``role`` that the inventory sets for this host (``host_vars``: its hostvars), but
    ``skip``: those a planner checks itself, with messages naming the element (and without templating, for
    example, 10,000 ranges a second time)."""
    return {option: host_vars[option] for option in entry_point_options(role, entry_point)
            if option not in skip and option in host_vars}


def check_options(host, role, values, entry_point="main"):
    """Raise ``InputError`` naming ``host`` and the option when ``values`` (option -> value, the options the
    inventory sets) do not pass the role's argument spec, with the words of Ansible's own check of the role."""
    options = entry_point_options(role, entry_point)
    errors = ArgumentSpecValidator(options).validate(
        {name: value for name, value in values.items() if name in options}).error_messages
    if errors:
        raise InputError(f"{host}: options of the role netkit.egress.{role}", problem="; ".join(errors))
