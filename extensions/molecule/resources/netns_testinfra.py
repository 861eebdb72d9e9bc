# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""testinfra hosts that are network namespaces: every command runs as ``ip netns exec NAME sh -c CMD``.

testinfra's ``ansible://`` backend would start one ad-hoc ansible run per command (about 10 s a test);
entering the namespace directly takes about 0.1 s. The molecule scenarios' tests get their hosts from
``netns_hosts(prefix, names)``; ``prefix`` is NETKIT_MOLECULE_PREFIX, set in the scenario's molecule.yml.
"""

from __future__ import annotations

import os

import testinfra.host
from testinfra.backend.local import LocalBackend

WHOAMI_PORT = 8080


class NetnsBackend(LocalBackend):
    """The local backend, one network namespace in."""

    NAME = "netns"

    def __init__(self, namespace, *args, **kwargs):
        self.namespace = namespace
        super().__init__(*args, **kwargs)

    def get_pytest_id(self):
        return f"netns://{self.namespace}"

    def run(self, command, *args, **kwargs):
        return self.run_local("ip netns exec %s /bin/sh -c %s", self.namespace, self.get_command(command, *args))


def netns_host(namespace):
    backend = NetnsBackend(namespace)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host


def molecule_prefix():
    prefix = os.environ.get("NETKIT_MOLECULE_PREFIX", "")
    if not prefix:
        raise RuntimeError("NETKIT_MOLECULE_PREFIX is not set (run the tests through molecule)")
    return prefix


def netns_hosts(names, prefix=None):
    """name -> testinfra Host running in namespace PREFIX-name."""
    prefix = prefix or molecule_prefix()
    return {name: netns_host(f"{prefix}-{name}") for name in names}


def namespace_exists(namespace):
    return os.path.exists(os.path.join("/run/netns", namespace))


_WHOAMI_CLIENT = (
    "import socket,sys\n"
    "try:\n"
    "    s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=float(sys.argv[3]))\n"
    "    data=b''\n"
    "    while not data.endswith(b'\\n'):\n"
    "        chunk=s.recv(256)\n"
    "        if not chunk: break\n"
    "        data+=chunk\n"
    "    print(data.decode().strip())\n"
    "except OSError as e:\n"
    "    print('ERROR', e); sys.exit(1)\n"
)


def whoami(host, server_address, port=WHOAMI_PORT, timeout=3.0):
    """Open a TCP connection from ``host`` to the lab's whoami server and return the source address the
    server saw, or None when no connection was made (refused, dropped, no route, timeout)."""
    result = host.run("timeout %s python3 -c %s %s %s %s", str(int(timeout) + 2), _WHOAMI_CLIENT,
                      server_address, str(port), str(timeout))
    if result.rc != 0:
        return None
    return result.stdout.strip().removeprefix("::ffff:") or None
