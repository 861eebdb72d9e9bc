#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: floating_ip
short_description: Hold floating IPs as extra addresses on a Linux host and announce them
description:
  - Adds floating IPs (egress source addresses of a gateway group) as extra addresses to the interface
    whose subnet contains them, with that subnet's prefix length, and announces them to the neighbours
    (gratuitous ARP for IPv4, unsolicited neighbour advertisement for IPv6) so that traffic follows an
    address that moved from another node.
  - Addresses are added with C(noprefixroute), so no second subnet route appears, and IPv6 ones also with
    C(nodad) and C(preferred_lft 0) (deprecated, so never chosen as source address, yet still answered and
    usable for SNAT), so the node's own address stays the source address of the node's own traffic.
  - IPv4 floating IPs carry the label C(<ifname>:nk) (the interface name is cut so that the label fits
    15 characters).
  - The module only ever removes addresses it added. It records them in O(state_file); an address is
    managed when it is recorded there AND present on the recorded interface. Addresses added by anyone
    else are never removed, and asking for one of them fails.
  - Announcements are built and sent with the Python standard library (an C(AF_PACKET) socket); no
    C(arping) or C(ndisc6) is needed. A failed announcement is a warning, not a failure.
  - Everything is validated before the first change; the address changes are applied in one
    C(ip -batch) run.
version_added: 0.1.0
author:
  - netkit.egress developers (@netkit)
options:
  addresses:
    description:
      - Floating IPs, IPv4 or IPv6, without prefix length.
      - Ignored with O(state=gathered).
    type: list
    elements: str
    default: []
  interface:
    description:
      - Interface for every address in O(addresses).
      - Default is, per address, the interface with a (non-floating, global) address whose subnet
        contains it, the longest prefix winning. No such interface, or several with the same prefix, is
        an error naming the address.
    type: str
  prefix_length:
    description:
      - Prefix length for every address in O(addresses).
      - Default is the prefix of the containing subnet; with O(interface) set and no containing subnet on
        it, the full length (32 or 128).
    type: int
  state:
    description:
      - C(present) adds O(addresses) and keeps the other floating IPs the module holds.
      - C(absent) removes O(addresses) if the module holds them (other addresses are left alone).
      - C(exact) makes O(addresses) the only floating IPs the module holds, removing its other ones, never
        an address it did not add.
      - C(gathered) changes nothing and reports the floating IPs the module holds in RV(addresses), and the
        host's addresses and default routes in RV(host_network).
      - An address held on another interface or with another prefix than wanted is moved.
    type: str
    choices: [present, absent, exact, gathered]
    default: present
  announce:
    description:
      - After adding addresses, send two gratuitous ARP frames (request and reply) per IPv4 address and an
        unsolicited neighbour advertisement (override flag) per IPv6 address on its interface.
    type: bool
    default: true
  state_file:
    description: Where the module records the addresses it added (JSON).
    type: path
    default: /etc/netkit-egress/floating_ips.json
  persist:
    description:
      - Write what brings the floating IPs this node holds after the run back at boot without Ansible, in the
        start program C(floating_ip.start) in O(persist_dir) (what boot runs where there is no systemd, as in
        containers and network namespaces), one command per address. Each command takes its address
        (C(ip address replace ...)) only when no other host answers for it on the segment (C(arping -D) for
        IPv4, C(ndisc6) for IPv6; a node that was down while a run moved its floating IPs away does not take
        them back beside the new holders), then announces it (gratuitous ARP).
      - Where systemd runs (C(/run/systemd/system) exists), also the oneshot unit
        C({systemd_unit_dir}/netkit-egress-floating-ip.service), whose C(ExecStart=) lines are the same commands,
        enabled (after C(network-online.target)).
      - When false, or when the node holds no floating IP, those files (and the unit) are removed. With VRRP
        (role C(netkit.egress.gateway_group), C(gateway_group_failover=vrrp)) keepalived holds the addresses
        and this module holds none, so nothing is persisted.
    type: bool
    default: false
extends_documentation_fragment:
  - netkit.egress.boot
attributes:
  check_mode:
    support: full
    description: Reports what would be added and removed (and the diff) without changing addresses or the state file.
  diff_mode:
    support: full
    description: Returns the floating IPs held and the boot files before and after.
  platform:
    support: full
    platforms: linux
    description: Linux with iproute2 (C(ip -j)); announcements need C(CAP_NET_RAW).
notes:
  - A floating IP must be held by one node only. The controller allocates each one to a single gateway
    node (see the filter C(netkit.egress.allocate_floating_ips) and the role C(netkit.egress.gateway_group)),
    which runs this module with O(state=exact) on every gateway node.
  - With O(persist), a node restores at boot the floating IPs it held at its last run, each only if no other
    host answers for it. If a run moved them to other gateway nodes while this node was down, the new
    holders answer and the node leaves them; its next run removes them from its records. Two nodes booting
    at once with the address free both take it; use VRRP where that matters.
seealso:
  - plugin: netkit.egress.allocate_floating_ips
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Hold two floating IPs on the interface of their subnet and announce them
  netkit.egress.floating_ip:
    addresses:
      - 192.168.1.100
      - 2001:db8:1::100

- name: Hold exactly the floating IPs allocated to this gateway node, remove the others we added
  netkit.egress.floating_ip:
    addresses: "{{ allocation | dict2items | selectattr('value', 'equalto', inventory_hostname)
                   | map(attribute='key') | list }}"
    state: exact
    persist: true   # back at boot without Ansible

- name: Release a floating IP
  netkit.egress.floating_ip:
    addresses: [192.168.1.100]
    state: absent

- name: Read the floating IPs this node holds
  netkit.egress.floating_ip:
    state: gathered
  register: held
"""

RETURN = r"""
addresses:
  description: The floating IPs the module holds after the run (predicted in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: The address, canonical text.
      type: str
    interface:
      description: The interface it is on.
      type: str
    prefix_length:
      description: Its prefix length.
      type: int
  sample: [{"address": "192.168.1.100", "interface": "eth0", "prefix_length": 24}]
added:
  description: Addresses added (or, in check mode, that would be added).
  returned: always
  type: list
  elements: str
  sample: ["192.168.1.100"]
removed:
  description: Addresses removed (or that would be removed).
  returned: always
  type: list
  elements: str
  sample: []
announced:
  description: Addresses announced to the neighbours in this run (never in check mode).
  returned: always
  type: list
  elements: str
  sample: ["192.168.1.100"]
commands:
  description: The C(ip -batch) lines run (or that would run), then C(write PATH) / C(remove PATH) for each boot
    file (O(persist)).
  returned: always
  type: list
  elements: str
  sample: ["address add 192.168.1.100/24 dev eth0 noprefixroute label eth0:nk",
           "address add 2001:db8:1::100/64 dev eth0 noprefixroute nodad preferred_lft 0"]
persisted_files:
  description: The boot files (O(persist)) kept up to date by the run; empty without O(persist).
  returned: always
  type: list
  elements: str
  sample: ["/etc/netkit-egress/floating_ip.start"]
diff:
  description: The floating IPs held and the boot files before and after, each C({addresses, files}) with a list
    like RV(addresses) and a mapping path -> content.
  returned: when diff mode is on
  type: dict
host_network:
  description:
    - What the egress NAT planning needs to know of the host, read in the same run instead of gathering
      facts, that is every address of every interface and the default routes.
  returned: with O(state=gathered)
  type: dict
  contains:
    addresses:
      description: Every IPv4 and IPv6 address, with C(interface), C(address), C(prefix_length), C(scope)
        (C(global), C(link), C(host)), C(secondary) and C(loopback) (on a loopback interface).
      type: list
      elements: dict
    default_routes:
      description: The default routes of the main table, with C(family) (C(ipv4), C(ipv6)), C(gateway) (none for a
        route without next hop) and C(interface).
      type: list
      elements: dict
  sample:
    addresses: [{"interface": "eth0", "address": "192.168.1.11", "prefix_length": 24, "scope": "global",
                 "secondary": false, "loopback": false}]
    default_routes: [{"family": "ipv4", "gateway": "192.168.1.254", "interface": "eth0"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netkit.egress.plugins.module_utils._floating_ip.model import STATES
from ansible_collections.netkit.egress.plugins.module_utils._floating_ip.run import run
from ansible_collections.netkit.egress.plugins.module_utils._host import HostError
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError

ARGUMENT_SPEC = {
    "addresses": {"type": "list", "elements": "str", "default": []},
    "interface": {"type": "str"},
    "prefix_length": {"type": "int"},
    "state": {"type": "str", "choices": list(STATES), "default": "present"},
    "announce": {"type": "bool", "default": True},
    "state_file": {"type": "path", "default": "/etc/netkit-egress/floating_ips.json"},
    "persist": {"type": "bool", "default": False},
    "persist_dir": {"type": "path", "default": "/etc/netkit-egress"},
    "systemd_unit_dir": {"type": "path", "default": "/etc/systemd/system"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = run(module)
    except (InputError, HostError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
