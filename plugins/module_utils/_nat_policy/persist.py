# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What brings the egress NAT datapath back at boot (pure): the sysctls, the nft table and, per family, the
rules and routes as ``ip -batch`` files, with the boot commands that load them (``_boot`` turns those into
the start program and the unit)."""

from __future__ import annotations

import os

from ansible_collections.netkit.egress.plugins.module_utils import _boot

MODULE = "nat_policy"
UNIT = _boot.NAT_POLICY_UNIT
DESCRIPTION = "netkit.egress egress NAT datapath (nft table, ip rules and routes, sysctls)"
SYSCTL_FILE = "nat_policy.sysctl"
NFT_FILE = "nat_policy.nft"
BATCH_FILES = {"ipv4": "nat_policy.ipv4", "ipv6": "nat_policy.ipv6"}
START_PROGRAM = "nat_policy.start"


def unit_path(unit_dir):
    return os.path.join(unit_dir, UNIT)


def all_paths(persist_dir, unit_dir):
    """Every file the module may own, so that stale ones are removed."""
    names = [SYSCTL_FILE, NFT_FILE, *BATCH_FILES.values(), START_PROGRAM]
    return [os.path.join(persist_dir, name) for name in names] + [unit_path(unit_dir)]


def render_files(sysctls, script, batches, binaries, persist_dir, unit_dir=None):
    """``{path: (content, mode)}`` that restores the datapath at boot, or {} when there is none.

    sysctls: name -> value; script: the whole-table nft script (None: no table); batches: family -> ``ip``
    words that build the rules and routes on a host without them (routes first: ``route replace`` may run
    twice, ``rule add`` may not); binaries: absolute paths of ``sysctl``, ``nft`` and ``ip``; unit_dir: where
    the unit goes (None where systemd does not run).
    """
    data, commands = {}, []
    if sysctls:
        path = os.path.join(persist_dir, SYSCTL_FILE)
        data[path] = _boot.header(MODULE) + "".join(f"{name} = {value}\n" for name, value in sorted(sysctls.items()))
        commands.append([binaries["sysctl"], "-q", "-p", path])
    if script:
        path = os.path.join(persist_dir, NFT_FILE)
        data[path] = script
        commands.append([binaries["nft"], "-f", path])
    for family, words in sorted(batches.items()):
        if words:
            path = os.path.join(persist_dir, BATCH_FILES[family])
            data[path] = "".join(line + "\n" for line in words)
            commands.append([binaries["ip"], "-4" if family == "ipv4" else "-6", "-batch", path])
    if not script and not any(batches.values()):
        return {}
    return _boot.boot_files(MODULE, UNIT, DESCRIPTION, data, commands, os.path.join(persist_dir, START_PROGRAM),
                            unit_dir, _boot.AFTER_NETWORK)
