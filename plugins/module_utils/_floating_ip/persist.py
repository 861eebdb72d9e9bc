# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What brings the floating IPs a node holds back at boot (pure): one ``ip -batch`` file of the addresses and
the boot command that loads it (``_boot`` turns it into the start program and the unit)."""

from __future__ import annotations

import os

from ansible_collections.netkit.egress.plugins.module_utils import _boot
from ansible_collections.netkit.egress.plugins.module_utils._floating_ip import model

MODULE = "floating_ip"
UNIT = _boot.FLOATING_IP_UNIT
DESCRIPTION = "netkit.egress floating IPs held by this node"
BATCH_FILE = "floating_ip.batch"
START_PROGRAM = "floating_ip.start"


def unit_path(unit_dir):
    return os.path.join(unit_dir, UNIT)


def all_paths(persist_dir, unit_dir):
    """Every file the module may own, so that stale ones are removed."""
    return [os.path.join(persist_dir, BATCH_FILE), os.path.join(persist_dir, START_PROGRAM), unit_path(unit_dir)]


def render_files(held, ip_binary, persist_dir, unit_dir=None):
    """``{path: (content, mode)}`` that adds the ``held`` addresses at boot, or {} when there are none;
    unit_dir: where the unit goes (None where systemd does not run)."""
    if not held:
        return {}
    path = os.path.join(persist_dir, BATCH_FILE)
    batch = "".join(model.add_command(item, verb="replace") + "\n" for item in model.sort_held(held))
    return _boot.boot_files(MODULE, UNIT, DESCRIPTION, {path: batch}, [[ip_binary, "-batch", path]],
                            os.path.join(persist_dir, START_PROGRAM), unit_dir, _boot.AFTER_NETWORK)
