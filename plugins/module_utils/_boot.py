# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What brings a module's state back at boot, rendered from one list of boot commands (pure).

Where systemd runs, a oneshot unit runs the commands as its ``ExecStart=`` lines; where it does not
(containers, network namespaces), a start program runs the very same commands, one a line. Both come from one
list of argv lists, so they cannot drift apart, and ``commands`` reads either back (what tests run).
"""

from __future__ import annotations

import os
import shlex

# The collection's boot units. Hosts without systemd run the start programs in this order too: the NAT
# datapath before keepalived, whose track script fails a node without it.
NAT_POLICY_UNIT = "netkit-egress-nat-policy.service"
FLOATING_IP_UNIT = "netkit-egress-floating-ip.service"
KEEPALIVED_UNIT = "netkit-egress-keepalived.service"
CONNTRACKD_UNIT = "netkit-egress-conntrackd.service"
# Files and units that need the network configured (routes need their device and next hop).
AFTER_NETWORK = {"after": ("network-online.target",), "wants": ("network-online.target",)}
PROGRAM_MODE = 0o755
DATA_MODE = 0o644


def header(module):
    return f"# Managed by netkit.egress.{module}; changes are overwritten.\n"


def render_unit(module, description, commands, after=(), before=(), wants=(), default_dependencies=True):
    """A oneshot unit whose ``ExecStart=`` lines are ``commands`` (argv lists, absolute binaries)."""
    lines = [header(module).strip(), "[Unit]", f"Description={description}"]
    if not default_dependencies:
        lines.append("DefaultDependencies=no")
    for key, units in (("Wants", wants), ("Before", before), ("After", after)):
        if units:
            lines.append(f"{key}={' '.join(units)}")
    lines += ["", "[Service]", "Type=oneshot", "RemainAfterExit=yes"]
    lines += [f"ExecStart={_unit_escape(shlex.join(argv))}" for argv in commands]
    lines += ["", "[Install]", "WantedBy=multi-user.target"]
    return "\n".join(lines) + "\n"


def _unit_escape(command):
    # systemd expands $VAR and %-specifiers in ExecStart=; the commands are meant literally.
    return command.replace("%", "%%").replace("$", "$$")


def _unit_unescape(command):
    return command.replace("$$", "$").replace("%%", "%")


def render_program(module, purpose, body, stop_on_error=True):
    """A ``/bin/sh`` program: the header, what it is for, then ``body`` (shell lines)."""
    lines = ["#!/bin/sh", header(module).strip(), f"# {purpose}"]
    if stop_on_error:
        lines.append("set -e")
    return "\n".join(lines + list(body)) + "\n"


def render_start_program(module, unit_name, commands):
    """The start program of a unit: the same commands, one a line, stopping at the first that fails."""
    purpose = f"What boot runs where there is no systemd (the unit {unit_name} runs the same commands)."
    return render_program(module, purpose, [shlex.join(argv) for argv in commands])


def commands(text):
    """The boot commands of a unit (its ``ExecStart=`` lines) or of a start program (its command lines)."""
    found = []
    for line in (text or "").splitlines():
        if line.startswith("ExecStart="):
            found.append(shlex.split(_unit_unescape(line.split("=", 1)[1])))
        elif line.startswith("/"):
            found.append(shlex.split(line))
    return found


def boot_files(module, unit_name, description, data_files, boot_commands, program_path, unit_dir=None,
               ordering=None):
    """``{path: (content, mode)}``: the data files the commands read, the start program and (with a
    ``unit_dir``, given where systemd runs) the unit. Nothing to restore: no files."""
    if not boot_commands:
        return {}
    files = {path: (content, DATA_MODE) for path, content in data_files.items()}
    files[program_path] = (render_start_program(module, unit_name, boot_commands), PROGRAM_MODE)
    if unit_dir:
        files[os.path.join(unit_dir, unit_name)] = (render_unit(module, description, boot_commands,
                                                                **(ordering or {})), DATA_MODE)
    return files
