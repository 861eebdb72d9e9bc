#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: wireguard
short_description: Converge one WireGuard interface (addresses, listen port, peers) with a key made on the host
description:
  - Creates and converges one WireGuard interface from a desired state, reading the live state once
    (C(wg show IF dump), C(ip -j)) and applying only the difference (one C(wg set), one C(ip -batch)).
  - The private key is generated on the managed host (C(wg genkey)) into O(private_key_file) (mode 0600) and
    never leaves it; the result returns the public key only.
  - Uses the kernel's WireGuard where the kernel has it, else C(wireguard-go) (userspace); the result's
    RV(implementation) says which.
  - Persists a wg-quick config (mode 0600, C(Table = off), the private key read from its file by C(PostUp)) at
    O(config_dir)/O(interface).conf, so C(wg-quick up) brings the interface back at boot.
  - Ownership. The module owns the interface it created, recorded by the marker line of that config; an
    interface or config of the same name that it did not create is never changed (the module fails). On its
    interface it owns the peers and addresses its config lists. A peer added by someone else (a foreign peer)
    is left as it is, and a range it holds cannot be given to one of our peers.
  - Every input is validated before anything changes; errors name the field (for example
    C(peers[2].endpoint)).
  - The role P(netkit.egress.wireguard_mesh#role) builds a mesh of these interfaces from inventory.
  - Routes are not its business (C(Table = off)), except the optional default route of O(internet_route);
    routes to other networks through the tunnel come from P(netkit.egress.egress_client#role).
version_added: 0.2.0
author:
  - netkit.egress developers (@netkit)
options:
  interface:
    description: Name of the WireGuard interface.
    type: str
    default: wg0
  addresses:
    description:
      - Addresses of the interface with their prefix length (C(10.100.0.11/24)), at most one per address family.
      - Addresses this module added before and that are no longer listed are removed.
    type: list
    elements: str
    default: []
  listen_port:
    description: UDP port the interface listens on; unset lets WireGuard pick one.
    type: int
  fwmark:
    description: Firewall mark of the tunnel's own UDP packets (0 = none); set by O(internet_route) when unset.
    type: int
    default: 0
  private_key_file:
    description:
      - File holding the interface's private key; generated with C(wg genkey) (mode 0600) when missing.
      - Default O(config_dir)/O(interface).key.
    type: path
  config_dir:
    description: Directory of the persisted wg-quick config (C(IF.conf)) and of the default key file.
    type: path
    default: /etc/wireguard
  peers:
    description:
      - The peers this module owns on the interface; peers it configured before and that are no longer listed are
        removed. Omitted (null) leaves the peers as they are (used to create the interface and learn its public
        key first).
      - Each is a dict with C(public_key) (required, base64 of 32 bytes), C(allowed_ips) (CIDRs), C(endpoint)
        (C(host:port) or C([IPv6]:port)), C(persistent_keepalive) (seconds, 0 = off) and C(name) (a label).
      - No two peers may share an address range (WireGuard would silently give it to the peer set last); a default
        route (C(0.0.0.0/0), C(::/0)) may contain other peers' ranges, longest prefix wins.
      - The elements are declared C(raw) so that a wrong element is refused with its index in the error.
    type: list
    elements: raw
  forwarding:
    description:
      - Turn on IP forwarding (the families of O(addresses)), for a node that forwards between peers (an ingress
        node). Never turned off by this module.
    type: bool
    default: false
  internet_route:
    description:
      - Send this host's internet traffic into the tunnel, to the peer whose C(allowed_ips) hold C(0.0.0.0/0) or
        C(::/0), with wg-quick's policy routing; the tunnel's own UDP (marked with C(fwmark)) keeps using the main
        table, and so do the host's other routes (its LAN), through a rule C(table main suppress_prefixlength 0).
      - Fail-closed unless C(fail_open) is true. An C(unreachable) default route in the tunnel's table means that
        traffic is dropped when the tunnel is gone, never sent around it on the underlay.
      - A dict with C(table) (default 51820), C(fwmark) (default 51820), C(priority) (of the fwmark rule, default
        5000; the suppress rule takes the one before) and C(fail_open) (default false). Null or omitted removes
        what an earlier run added.
    type: dict
  implementation:
    description: V(auto) uses the kernel's WireGuard when it has one, else C(wireguard-go).
    type: str
    choices: [auto, kernel, wireguard-go]
    default: auto
  state:
    description:
      - V(present) converges the interface; V(absent) removes the interface, its config and the key if this module
        generated it (only if this module created them).
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reads the interface and reports what would change; nothing is generated or written.
  diff_mode:
    support: full
    description: The interface's addresses, port and peers before and after, one per line (no secrets).
  platform:
    support: full
    platforms: linux
    description: Linux with wireguard-tools (C(wg)), iproute2, and the kernel module or C(wireguard-go).
notes:
  - C(wireguard-go) keeps its control socket at C(/var/run/wireguard/IF.sock); several network namespaces of one
    machine need a private C(/run) each (the P(netkit.egress.netns#connection) connection gives one).
seealso:
  - module: netkit.egress.egress_routes
"""

EXAMPLES = r"""
- name: Create the interface and learn its public key
  netkit.egress.wireguard:
    interface: wg0
    addresses: [10.100.0.11/24, "fd00:100::11/64"]
    listen_port: 51820
  register: wg

- name: Peer with the office gateway, whose range is inside the tunnel
  netkit.egress.wireguard:
    interface: wg0
    addresses: [10.100.0.11/24]
    listen_port: 51820
    peers:
      - name: office-gw
        public_key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
        endpoint: 198.51.100.1:51820
        allowed_ips: [10.100.0.1/32, 192.168.50.0/24]
        persistent_keepalive: 25
"""

RETURN = r"""
public_key:
  description: The interface's public key (null in check mode before the key exists). The private key is never returned.
  returned: always
  type: str
  sample: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
implementation:
  description: C(kernel) or C(wireguard-go) (userspace).
  returned: when state is present
  type: str
  sample: wireguard-go
peers:
  description: The peers this module owns after the run (predicted in check mode).
  returned: always
  type: list
  elements: dict
foreign_peers:
  description: Public keys of peers on the interface that this module did not configure and left alone.
  returned: always
  type: list
  elements: str
commands:
  description: The commands applied (or that would be in check mode); secrets appear only as file paths.
  returned: always
  type: list
  elements: str
  sample: ["wg set wg0 listen-port 51820 peer xTIB...= allowed-ips 10.100.0.1/32"]
summary:
  description: What changed, in words.
  returned: always
  type: list
  elements: str
config_path:
  description: The persisted wg-quick config.
  returned: always
  type: str
  sample: /etc/wireguard/wg0.conf
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netkit.egress.plugins.module_utils._host import Host, HostError, HostLock
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.module_utils._wireguard import run

ARGUMENT_SPEC = dict(
    interface=dict(type="str", default="wg0"),
    addresses=dict(type="list", elements="str", default=[]),
    listen_port=dict(type="int"),
    fwmark=dict(type="int", default=0),
    private_key_file=dict(type="path"),
    config_dir=dict(type="path", default="/etc/wireguard"),
    peers=dict(type="list", elements="raw"),
    forwarding=dict(type="bool", default=False),
    internet_route=dict(type="dict"),
    implementation=dict(type="str", choices=["auto", "kernel", "wireguard-go"], default="auto"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    host = Host(module)
    try:
        with HostLock():
            desired, plan = run.plan_run(host, module.params)
            if plan.changed and not module.check_mode:
                run.apply(host, desired, plan)
    except (InputError, HostError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**run.result(desired, plan, diff=module._diff))


if __name__ == "__main__":
    main()
