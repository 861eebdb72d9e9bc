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
  - Namespaces share the controller's filesystem, so two namespace hosts would share every state, configuration,
    pid and socket directory. The connection gives each host its own copy of the directories in
    O(private_dirs), as separate machines have. Every command runs with a per-host directory bind-mounted over
    each of them (inside the private mount namespace that C(ip netns exec) creates, so nothing outside the
    command sees the mounts). A path under C(/etc) is kept in C(/etc/netns/NAME/), where a plain
    C(ip netns exec NAME ...) finds it too; any other path in C(/run/netkit-egress-netns/NAME/), which a reboot
    empties as it empties C(/run).
  - By default each host has its own whole C(/run) (kept in C(/run/netkit-egress-netns/NAME/run)), as a separate
    machine has, so nothing a task or daemon creates under C(/run) (wireguard-go's control socket
    C(/run/wireguard/IF.sock), pid files, locks) appears in the controller's own C(/run). A namespace host's
    C(/run) has no C(/run/systemd/system), so modules see a machine without systemd and start their daemons
    directly.
  - Daemons started by a task (keepalived, conntrackd, wireguard-go) keep the mounts of the command that started
    them, so their pid files, sockets and configuration stay per host.
  - Files are copied with plain filesystem operations into the remote temporary directory, which is shared;
    C(ansible.builtin.fetch) of a file in a private directory reads the controller's own path (use
    C(ansible.builtin.slurp) instead).
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
  private_dirs:
    description:
      - Absolute directories that each namespace host gets its own copy of (see the description).
      - The defaults are where netkit.egress and the daemons it runs keep state, configuration, pid files and
        sockets (wireguard-go's control socket is always C(/run/wireguard/IF.sock)), that is the whole C(/run) and the
        configuration directories under C(/etc).
      - With C(/run) in the list, a path below it is already private and is left out; C(/run) is mounted last.
      - Set to an empty list to share the controller's directories.
    type: list
    elements: str
    default: [/etc/netkit-egress, /etc/wireguard, /etc/keepalived, /etc/conntrackd, /run]
    vars:
      - name: ansible_netns_private_dirs
notes:
  - Requires root on the controller (entering a namespace needs CAP_SYS_ADMIN).
  - The namespace must exist (C(ip netns add NAME)); a missing namespace makes the host
    unreachable, as a powered-off machine would be over SSH.
  - Deleting a namespace does not delete its private directories; remove C(/etc/netns/NAME) and
    C(/run/netkit-egress-netns/NAME) with it.
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
NETNS_ETC_DIR = "/etc/netns"
PRIVATE_RUN_ROOT = "/run/netkit-egress-netns"
DEFAULT_PRIVATE_DIRS = ("/etc/netkit-egress", "/etc/wireguard", "/etc/keepalived", "/etc/conntrackd", "/run")
_NAME_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def private_source(namespace, path):
    """Where namespace host ``namespace`` keeps its own copy of directory ``path``."""
    relative = os.path.normpath(path).lstrip("/")
    if relative.startswith("etc/") and "/" not in relative[4:]:
        return os.path.join(NETNS_ETC_DIR, namespace, relative[4:])
    return os.path.join(PRIVATE_RUN_ROOT, namespace, relative)


def private_mounts(namespace, private_dirs):
    """Shell commands that bind each host's own directories over ``private_dirs`` ('' when there are none)."""
    targets = []
    for path in private_dirs or []:
        if not os.path.isabs(path) or ".." in path.split("/") or os.path.normpath(path) == "/":
            raise AnsibleConnectionFailure(f"netns: private_dirs: {path!r} is not an absolute directory")
        targets.append(os.path.normpath(path))
    if "/run" in targets:
        # Below a private /run everything is private already; /run goes last, because every source outside /etc
        # lives under the controller's /run, which the private one hides once it is mounted.
        targets = [path for path in targets if path != "/run" and not path.startswith("/run/")] + ["/run"]
    pairs = [(private_source(namespace, path), path) for path in dict.fromkeys(targets)]
    if not pairs:
        return ""
    made = " ".join(shlex.quote(path) for pair in pairs for path in pair)
    binds = " && ".join(f"mount --bind {shlex.quote(source)} {shlex.quote(target)}" for source, target in pairs)
    return f"mkdir -p {made} && {binds}"


def wrap(ip_executable, namespace, private_dirs, cmd):
    """The command line that runs shell command ``cmd`` on namespace host ``namespace``."""
    prefix = f"{shlex.quote(ip_executable)} netns exec {shlex.quote(namespace)} /bin/sh -c"
    mounts = private_mounts(namespace, private_dirs)
    if not mounts:
        return f"{prefix} {shlex.quote(cmd)}"
    # The user's command is passed as $1 so that it is quoted exactly once.
    script = mounts + ' && exec /bin/sh -c "$1"'
    return f"{prefix} {shlex.quote(script)} netkit-netns {shlex.quote(cmd)}"


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
        text = cmd if isinstance(cmd, str) else cmd.decode("utf-8", "surrogateescape")
        wrapped = wrap(self.get_option("ip_executable"), self._namespace(), self.get_option("private_dirs"), text)
        return super().exec_command(wrapped, in_data=in_data, sudoable=sudoable)
