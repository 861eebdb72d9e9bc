# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Where a module that persists its state for boot writes its files (netkit.egress.boot)."""

    DOCUMENTATION = r"""
options:
  persist_dir:
    description: Directory of the boot files and the start program (owned by netkit.egress).
    type: path
    default: /etc/netkit-egress
  systemd_unit_dir:
    description: Directory of the systemd unit (written only where systemd runs).
    type: path
    default: /etc/systemd/system
"""
