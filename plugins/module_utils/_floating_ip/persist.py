# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What brings the floating IPs a node holds back at boot (pure): one boot command per address (``_boot`` turns
them into the start program and the unit).

A node that was down while a run moved its floating IPs to the others must not take them back beside the new
holders: each command first asks the segment whether the address answers (``arping -D`` / ``ndisc6``), takes the
address only when nobody does, and then announces it (gratuitous ARP)."""

from __future__ import annotations

import os

from ansible_collections.netkit.egress.plugins.module_utils import _boot
from ansible_collections.netkit.egress.plugins.module_utils import _net as net
from ansible_collections.netkit.egress.plugins.module_utils._floating_ip import model

MODULE = "floating_ip"
UNIT = _boot.FLOATING_IP_UNIT
DESCRIPTION = "netkit.egress floating IPs held by this node"
# Written by earlier versions (one ip -batch file); removed when found.
BATCH_FILE = "floating_ip.batch"
START_PROGRAM = "floating_ip.start"


def unit_path(unit_dir):
    return os.path.join(unit_dir, UNIT)


def all_paths(persist_dir, unit_dir):
    """Every file the module may own, so that stale ones are removed."""
    return [os.path.join(persist_dir, BATCH_FILE), os.path.join(persist_dir, START_PROGRAM), unit_path(unit_dir)]


_TAKE_IF_FREE = ('dev=$1 address=$2; shift 2; '
                 'if ! command -v {tool} >/dev/null 2>&1 || {free}; then "$@"{announce}; '
                 'else echo "netkit.egress floating_ip: $address answers on $dev from another host: not taken at '
                 'boot" >&2; fi')
_PROBES = {
    # arping -D exits 0 when no host answered the duplicate-address probe.
    "ipv4": ("arping", 'arping -q -D -c 1 -w 1 -I "$dev" "$address"',
             '; arping -q -U -c 1 -I "$dev" "$address" || true; arping -q -A -c 1 -I "$dev" "$address" || true'),
    # ndisc6 exits 0 when a neighbour advertisement for the address came back.
    "ipv6": ("ndisc6", '! ndisc6 -q -1 -r 1 -w 500 "$address" "$dev"', ""),
}


def boot_command(item, ip_binary):
    """The argv that takes ``item`` at boot when no other host answers for it."""
    tool, free, announce = _PROBES[net.family_of(item.address)]
    script = _TAKE_IF_FREE.format(tool=tool, free=free, announce=announce)
    return (["/bin/sh", "-c", script, MODULE, item.interface, item.address, ip_binary]
            + model.add_command(item, verb="replace").split())


def render_files(held, ip_binary, persist_dir, unit_dir=None):
    """``{path: (content, mode)}`` that adds the ``held`` addresses at boot, or {} when there are none;
    unit_dir: where the unit goes (None where systemd does not run)."""
    commands = [boot_command(item, ip_binary) for item in model.sort_held(held)]
    return _boot.boot_files(MODULE, UNIT, DESCRIPTION, {}, commands, os.path.join(persist_dir, START_PROGRAM),
                            unit_dir, _boot.AFTER_NETWORK)
