# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: netns
short_description: Run tasks inside a named Linux network namespace on the controller
description:
  - Runs every task of a host inside a Linux network namespace of the machine that runs Ansible,
    by prefixing each command with C(ip netns exec NAME).
  - The namespace is taken from C(ansible_host) and defaults to the inventory hostname, so an
    inventory of namespace hosts looks like an inventory of SSH hosts.
  - Namespaces share the controller's filesystem. Files are copied with plain filesystem
    operations, and tasks that write host files (persistence) must be given per-host paths.
  - Meant for labs, tests and CI that model several hosts on one machine; the same playbooks run
    unchanged over SSH against real hosts.
author:
  - netkit.egress developers (@netkit)
version_added: 0.1.0
extends_documentation_fragment: []
attributes:
  check_mode:
    support: full
    description:
      - Check mode works through this connection as over SSH; it is the modules' business, and the connection
        only runs their commands inside the namespace.
  diff_mode:
    support: full
    description:
      - Diffs are produced by the modules and returned unchanged.
  platform:
    support: full
    platforms: linux
    description:
      - The controller must be Linux with C(ip) from iproute2 and run as root; the managed hosts are its
        network namespaces.
options:
  namespace:
    description:
      - Name of the network namespace to run in.
      - When not set, C(ansible_host) is used, which itself defaults to the inventory hostname.
    type: str
    vars:
      - name: ansible_netns_name
  ip_executable:
    description:
      - Path of the C(ip) binary used to enter the namespace.
    type: str
    default: ip
    vars:
      - name: ansible_netns_ip_executable
notes:
  - Requires root on the controller (entering a namespace needs CAP_SYS_ADMIN).
  - The namespace must exist (C(ip netns add NAME)); a missing namespace makes the host
    unreachable, as a powered-off machine would be over SSH.
"""

EXAMPLES = r"""
# inventory.yml
# all:
#   vars:
#     ansible_connection: netkit.egress.netns
#   hosts:
#     gw1: {}                  # runs inside namespace "gw1"
#     member1:
#       ansible_host: lab-m1   # runs inside namespace "lab-m1"
"""

import os
import shlex

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.connection.local import Connection as LocalConnection

NETNS_RUN_DIR = "/run/netns"
_NAME_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class Connection(LocalConnection):
    """Local connection whose commands run inside ``ip netns exec NAME``."""

    transport = "netkit.egress.netns"
    has_pipelining = True

    def _namespace(self) -> str:
        name = self.get_option("namespace") or self._play_context.remote_addr
        if not name or not set(name) <= _NAME_ALLOWED or name in (".", ".."):
            raise AnsibleConnectionFailure(f"netns: invalid namespace name {name!r}")
        return name

    def _connect(self):
        # A missing namespace is a host that is down: report it as unreachable, like SSH would.
        if not os.path.exists(os.path.join(NETNS_RUN_DIR, self._namespace())):
            raise AnsibleConnectionFailure(f"netns: network namespace {self._namespace()!r} does not exist")
        return super()._connect()

    def exec_command(self, cmd, in_data=None, sudoable=True):
        wrapped = "{ip} netns exec {ns} /bin/sh -c {cmd}".format(
            ip=shlex.quote(self.get_option("ip_executable")),
            ns=shlex.quote(self._namespace()),
            cmd=shlex.quote(cmd if isinstance(cmd, str) else cmd.decode("utf-8", "surrogateescape")),
        )
        return super().exec_command(wrapped, in_data=in_data, sudoable=sudoable)
