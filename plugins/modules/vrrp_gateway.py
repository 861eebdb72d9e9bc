#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vrrp_gateway
short_description: Hold floating IPs with keepalived (VRRPv3), fenced, with optional conntrackd state sync
description:
  - Renders and runs keepalived so that the gateway nodes of a group hold the floating IPs themselves and move
    them within a fraction of a second when a holder dies, without a playbook run. VRRPv3, unicast peers, one
    VRRP instance per floating IP with the priority given by the controller's allocation (see the role
    C(netkit.egress.gateway_group)), gratuitous ARP repeated at takeover and refreshed while master.
  - A track script fails a node without a default route (and, with O(track_nft_table) and O(track_return_routes),
    without the NAT table that translates to the floating IPs or the return routes to the workloads); the VRRP
    interface and O(track_interfaces) are tracked for link state.
  - A fence, started by keepalived itself, makes sure no two gateways answer ARP for one floating IP when
    keepalived is killed (SIGKILL), stopped (SIGSTOP), or comes back; it records every state change with its time.
  - With O(conntrack_sync), conntrackd (FTFW) replicates the connection tracking table over O(sync_interface)
    and the fence runs conntrackd's commit/flush/resync hooks on state changes, so established connections
    through a floating IP survive a failover.
  - Where systemd runs, it writes units C(netkit-egress-keepalived.service) (and C(netkit-egress-conntrackd.service))
    and enables them; elsewhere it runs the start program it writes (C(<config_dir>/start)), which boot can run
    as well. Daemons are stopped by their pid files only.
  - Only IPv4 floating IPs are supported.
version_added: 0.2.0
author:
  - netkit.egress developers (@netkit)
options:
  instances:
    description:
      - One VRRP instance per floating IP.
    type: list
    elements: dict
    default: []
    suboptions:
      address:
        description: The floating IP (IPv4, without prefix); it goes on the interface whose subnet contains it.
        type: str
        required: true
      vrid:
        description: The virtual router id (1-255), the same on every gateway node and unique per floating IP.
        type: int
        required: true
      priority:
        description: This node's priority for the address (1-254); the highest live node holds it.
        type: int
        required: true
  interface:
    description: Interface of the floating IPs; default is the interface whose subnet contains them.
    type: str
  source_address:
    description: This node's address for VRRP adverts; default is its address in the floating IPs' subnet.
    type: str
  unicast_peers:
    description: The other gateway nodes' addresses (VRRP adverts are sent to them by unicast).
    type: list
    elements: str
    default: []
  advert_interval:
    description:
      - Seconds between VRRP adverts (0.01-40.95). A backup takes over about 3.5 intervals after the
        master's last advert; shorter intervals fail over faster and cost more false failovers on a loaded host.
    type: float
    default: 1.0
  garp_repeat:
    description: Gratuitous ARP frames sent when taking over an address.
    type: int
    default: 5
  garp_refresh:
    description: Seconds between gratuitous ARP refreshes while master (0 disables).
    type: int
    default: 10
  drain:
    description: Give every instance the lowest priority (1), so the other nodes take the addresses over
      make-before-break and this node takes none while another one lives.
    type: bool
    default: false
  track_interfaces:
    description: More interfaces whose link state fails this node (the uplink when it is not the VRRP interface).
    type: list
    elements: str
    default: []
  track_nft_table:
    description: An nft table (C(FAMILY NAME)) that must exist for this node to hold addresses, e.g.
      C(inet netkit_egress_nat), the table that SNATs to the floating IPs.
    type: str
    default: ""
  track_return_routes:
    description:
      - How many IPv4 routes with protocol O(route_protocol) the main table must have for this node to hold
        addresses (the return routes to the workloads that M(netkit.egress.nat_policy) adds). A link that went
        down takes them with it; without them the node would receive replies it cannot deliver.
    type: int
    default: 0
  route_protocol:
    description: The route protocol of the return routes (M(netkit.egress.nat_policy)'s C(route_protocol)).
    type: int
    default: 201
  conntrack_sync:
    description: Run conntrackd (FTFW) to replicate connection state to the other gateway nodes.
    type: bool
    default: false
  sync_interface:
    description: The interface, with an IPv4 address, that carries the conntrack sync traffic.
    type: str
  sync_peers:
    description: The other gateway nodes' addresses on their sync interfaces.
    type: list
    elements: str
    default: []
  state:
    description:
      - C(present) writes the files and starts (or reloads) the daemons.
      - C(absent) stops the daemons (keepalived hands its addresses over first) and removes the files.
      - C(gathered) changes nothing and reports the daemons and the VRRP state of every instance.
    type: str
    choices: [present, absent, gathered]
    default: present
  config_dir:
    description: Directory of the configuration files and programs.
    type: path
    default: /etc/netkit-egress/vrrp
  run_dir:
    description: Directory of pid files, sockets, the notify FIFO and the state file.
    type: path
    default: /run/netkit-egress
  unit_dir:
    description: Directory of the systemd units (used only where systemd runs).
    type: path
    default: /etc/systemd/system
attributes:
  check_mode:
    support: full
    description: Reports the files that would change and the daemon actions, changing nothing.
  diff_mode:
    support: full
    description: Returns the managed files before and after.
  platform:
    support: full
    platforms: linux
    description: Linux with keepalived (2.1 or later) and, for O(conntrack_sync), conntrackd.
notes:
  - Every gateway node must have the same SNAT rules all the time (the role C(netkit.egress.egress_nat) does
    that); this module moves nothing but addresses and conntrack state.
seealso:
  - module: netkit.egress.floating_ip
"""

EXAMPLES = r"""
- name: Hold two floating IPs with VRRP, fail over in about 0.35 s
  netkit.egress.vrrp_gateway:
    instances:
      - {address: 192.168.1.100, vrid: 1, priority: 200}
      - {address: 192.168.1.101, vrid: 2, priority: 150}
    unicast_peers: [192.168.1.12]
    advert_interval: 0.1
    track_nft_table: inet netkit_egress_nat

- name: Read who holds what
  netkit.egress.vrrp_gateway:
    state: gathered
  register: vrrp
"""

RETURN = r"""
instances:
  description: Every VRRP instance of this node with its state as keepalived last reported it.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The instance name (C(nk_) and the address).
      type: str
    address:
      description: The floating IP.
      type: str
    state:
      description: C(MASTER), C(BACKUP), C(FAULT), C(STOP), C(FENCED), C(STOPPED) (keepalived is not running) or C(UNKNOWN).
      type: str
    since:
      description: Unix time of the last transition, or null.
      type: float
    held:
      description: Whether the host has the address configured now.
      type: bool
  sample: [{"name": "nk_192_168_1_100", "address": "192.168.1.100", "vrid": 1, "priority": 200,
            "state": "MASTER", "since": 1796162052.56}]
files:
  description: Files written or removed (or that would be).
  returned: always
  type: list
  elements: str
daemons:
  description: What was done to each daemon (C(start), C(reload), C(restart), C(stop)); with
    O(state=gathered), C(running) or C(stopped).
  returned: always
  type: dict
commands:
  description: The changes as commands.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netkit.egress.plugins.module_utils import _net as net
from ansible_collections.netkit.egress.plugins.module_utils._host import Host, HostError, HostLock
from ansible_collections.netkit.egress.plugins.module_utils._vrrp_gateway import model
from ansible_collections.netkit.egress.plugins.module_utils._vrrp_gateway.run import converge

ARGUMENT_SPEC = {
    "instances": {"type": "list", "elements": "dict", "default": [], "options": {
        "address": {"type": "str", "required": True},
        "vrid": {"type": "int", "required": True},
        "priority": {"type": "int", "required": True},
    }},
    "interface": {"type": "str"},
    "source_address": {"type": "str"},
    "unicast_peers": {"type": "list", "elements": "str", "default": []},
    "advert_interval": {"type": "float", "default": 1.0},
    "garp_repeat": {"type": "int", "default": 5},
    "garp_refresh": {"type": "int", "default": 10},
    "drain": {"type": "bool", "default": False},
    "track_interfaces": {"type": "list", "elements": "str", "default": []},
    "track_nft_table": {"type": "str", "default": ""},
    "track_return_routes": {"type": "int", "default": 0},
    "route_protocol": {"type": "int", "default": 201},
    "conntrack_sync": {"type": "bool", "default": False},
    "sync_interface": {"type": "str"},
    "sync_peers": {"type": "list", "elements": "str", "default": []},
    "state": {"type": "str", "choices": list(model.STATES), "default": "present"},
    "config_dir": {"type": "path", "default": "/etc/netkit-egress/vrrp"},
    "run_dir": {"type": "path", "default": "/run/netkit-egress"},
    "unit_dir": {"type": "path", "default": "/etc/systemd/system"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        with HostLock():
            result = converge(module, Host(module))
    except (net.InputError, HostError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
