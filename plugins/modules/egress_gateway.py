#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: egress_gateway
short_description: Make a Linux host the egress gateway of a mesh network (Netmaker style)
version_added: 0.1.0
description:
  - Lets the members of a network (arriving on O(network_interface), for example a WireGuard interface)
    reach the egress O(ranges) through this host, with or without masquerading.
  - Owns one nftables table C(inet netkit_egress), or with the iptables backend the chains
    C(NETKIT-EGRESS-FWD) (filter) and C(NETKIT-EGRESS-NAT) (nat) of each address family plus one jump rule
    into each from C(FORWARD) / C(POSTROUTING), and the ipset sets named C(netkit-egress-*) that those chains
    match the ranges with. Nothing else is touched; C(flush ruleset) is never used,
    no chain policy is changed, no foreign rule is reordered.
  - Everything is applied as one atomic transaction per backend (C(nft -f) of the whole table, or one
    C(iptables-restore --noflush) per family) after it was validated with C(nft -c) /
    C(iptables-restore --test); bad input fails before anything on the host changes.
  - Desired and current state are compared in canonical form, so the module is idempotent even with
    messy input (host bits, overlapping ranges, upper case IPv6).
  - Enables forwarding (C(net.ipv4.ip_forward), C(net.ipv6.conf.all.forwarding)) for the address
    families of the ranges only.
options:
  ranges:
    description:
      - IPv4/IPv6 CIDRs the network may reach through this host.
      - Host bits are accepted and cleared (C(10.1.2.3/8) becomes C(10.0.0.0/8)); the normalised list is
        returned in RV(ranges). Overlapping ranges are fine.
      - Like any list parameter it also takes one comma-separated string (C(10.1.0.0/16,10.2.0.0/16)), which costs
        ansible-core less than a 10,000-element list when the task is templated and sent; the role
        P(netkit.egress.egress_gateway#role) passes its ranges that way.
      - With O(networks), every network's ranges are added. A range that no network lists is then reachable
        by nobody (traffic from O(network_interface) into any egress range is dropped unless a network allows it).
    type: list
    elements: str
    default: []
  excluded_ranges:
    description:
      - IPv4/IPv6 CIDRs cut out of every range, the top-level O(ranges) and every O(networks[].ranges) alike;
        traffic from the network to an excluded address is neither accepted, dropped nor masqueraded by our
        rules (it is not an egress range; the host's own forwarding policy decides), and the role
        P(netkit.egress.egress_client#role) gives the members no route to it.
      - Both backends hold the ranges minus the excluded parts (CIDR subtraction), so O(state=gathered)
        reports those remaining ranges in O(ranges) and an empty O(excluded_ranges); that output is a no-op
        as input again.
      - A range wholly excluded needs no route and no outbound interface.
    type: list
    elements: str
    default: []
  nat:
    description:
      - Masquerade traffic from the network to the ranges out of the outbound interface.
      - When false the hosts in the ranges need a route back to the network.
      - With O(networks) the masquerade is per network (source cidr to its ranges).
    type: bool
    default: true
  network_interface:
    description:
      - The interface the network's members arrive on (Netmaker's C(netmaker), a WireGuard interface).
      - Required unless O(state) is C(absent) or C(gathered). Must exist for C(present), need not exist for
        C(rendered).
    type: str
  interface:
    description:
      - Outbound interface for every range.
      - By default it is chosen per range and per address family from the kernel's routes
        (C(ip -4 route get) / C(ip -6 route get) of the first address of the range; never an IPv4 lookup for an
        IPv6 range). The ranges C(0.0.0.0/0) and C(::/0) take the device of the default route of their family
        (an internet gateway). A range without a route fails naming the range.
      - Required for O(state=rendered) when there are ranges (rendering runs offline, without route lookups).
    type: str
  networks:
    description:
      - Segmentation for a gateway that serves several networks. Traffic arriving on O(network_interface)
        from a network's O(networks[].cidr) may reach only that network's O(networks[].ranges); all other
        traffic from O(network_interface) into the egress ranges is dropped (the C(netmakeregress) chain of
        Netmaker's guide, done natively).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name of the network (1-63 characters of C(A-Z a-z 0-9 _ . -)); kept in rule comments. Required.
        type: str
      cidr:
        description:
          - The network's address range, or a list of them (for example its IPv4 and IPv6 ranges). Required.
        type: raw
      ranges:
        description: The egress ranges this network may reach.
        type: list
        elements: str
        default: []
      address:
        description:
          - The gateway's address in this network, one address or a list of one per address family, each
            inside one of the network's O(networks[].cidr) (a C(/prefix) is ignored).
          - Not used by the gateway's own rules; the role P(netkit.egress.egress_client#role) routes the
            members of this network through it. When omitted, the role uses the gateway's address on the
            network interface that lies inside the network's cidr.
        type: raw
  reverse_nat:
    description:
      - Also masquerade connections that hosts in a network's ranges open to the network's members, out of
        O(network_interface) (Netmaker's reverse C(MASQUERADE) rule). Needs O(networks).
    type: bool
    default: false
  forward_accept:
    description:
      - Accept the forwarded egress traffic (network to ranges) and its replies in our own chain.
      - With iptables this makes egress work on hosts whose C(FORWARD) policy is C(DROP) (docker).
      - In nftables an accept in our table cannot override a drop in another table (for example an
        iptables-nft C(FORWARD) policy C(DROP)); this is why O(backend=auto) picks the backend of the firewall
        in use. When false our chain still holds the same rules with C(return) instead of C(accept).
      - The nftables backend renders its C(forward) chain only where it decides something, with O(networks)
        (the segmentation drops and the accepts or returns before them), or with O(nat=false) (the forward
        rules are then the only record of the paths). Without O(networks) and with O(nat=true) it has no
        forward chain (the masquerade rules carry the paths), so O(forward_accept) changes nothing there and
        O(state=gathered) reports it as V(true).
    type: bool
    default: true
  backend:
    description:
      - C(auto) uses iptables when the host already has foreign iptables rules of either variant (non-empty
        user chains such as C(DOCKER-USER), a non-default policy, any rule), in that variant; otherwise
        nftables when C(nft) is installed; otherwise iptables. RV(backend_reason) says why.
      - When the backend changes between runs, the objects of the previous backend are removed in the same run.
      - For O(state=rendered), C(auto) renders nftables.
    type: str
    choices: [auto, nftables, iptables]
    default: auto
  iptables_variant:
    description:
      - Which iptables to use with the iptables backend. C(auto) takes the variant that holds the host's rules,
        else the variant of the C(iptables) binary.
    type: str
    choices: [auto, nft, legacy]
    default: auto
  state:
    description:
      - C(present) converges the rules and sysctls. C(absent) removes exactly what this module owns (our table,
        our chains and jump rules, persistence files); forwarding sysctls are left as they are.
      - C(rendered) returns the ruleset in RV(rendered) without touching or even reading the host.
      - C(gathered) returns what this module owns on the host now in RV(gathered), in a shape that is valid
        input again.
    type: str
    choices: [present, absent, rendered, gathered]
    default: present
  persist:
    description:
      - Write what brings the rules and forwarding back at boot without Ansible
        (C({persist_dir}/egress_gateway.nft), or C(egress_gateway.ipset) and C(egress_gateway.rules.v4)/C(.v6),
        C({sysctl_dir}/90-netkit-egress-gateway.conf)
        and a oneshot C({systemd_unit_dir}/netkit-egress-gateway.service) whose C(ExecStart=) lines restore them).
      - When false, files written by an earlier run are removed, wherever they were written (a persisting run
        records every file it wrote in C({persist_dir}/egress_gateway.files)).
      - The unit is enabled (C(systemctl daemon-reload) and C(systemctl enable)) only when systemd runs the host
        (C(/run/systemd/system) exists); otherwise enable it yourself.
    type: bool
    default: false
  persist_dir:
    description: Directory of the persisted ruleset files.
    type: path
    default: /etc/netkit-egress
  systemd_unit_dir:
    description: Directory of the systemd unit.
    type: path
    default: /etc/systemd/system
  sysctl_dir:
    description: Directory of the sysctl.d file.
    type: path
    default: /etc/sysctl.d
  full_result:
    description:
      - Return the lists and texts that grow with the ranges (RV(ranges), RV(interfaces), RV(rendered),
        RV(before), RV(after), and RV(commands) with their whole input) with C(state=present) and C(state=absent).
      - When false (the default), the result has counts and names instead (RV(range_count),
        RV(outbound_interfaces)) and each command as its first line and its number of lines of input. At 10,000
        ranges the full result is about 1 MB, and the controller handles every byte of it (about half of what a
        playbook task costs). The C(invocation) echo (shown with C(-vvv)) gives O(ranges), O(excluded_ranges)
        and O(networks) of more than three items as their count. Diff mode (C(--diff)) still returns the whole
        C(diff).
      - C(state=rendered) and C(state=gathered) always return everything.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Computes everything (including C(nft -c) / C(iptables-restore --test)) and changes nothing; C(changed) is what the real run would report.
  diff_mode:
    support: full
    description: Returns the canonical text of our objects and the forwarding sysctls before and after.
  platform:
    support: full
    platforms: linux
    description: Linux with C(nft) or C(iptables)/C(ip6tables) (nf_tables or legacy) and C(ipset), C(ip) and C(/proc/sys).
notes:
  - Applies IPv6 masquerade only where the kernel supports it; otherwise it fails before applying anything.
  - Both backends match ranges with sets, so thousands of ranges cost one lookup per packet, not one rule each
    (nftables interval sets; with iptables, C(hash:net) ipset sets and C(-m set --match-set), one rule per path).
  - The iptables backend needs the C(ipset) binary and fails naming it when it is missing (no fallback to one
    rule per range, which costs up to 90% of the throughput at 10,000 ranges). A set's new content is built
    under C(<name>-new) and swapped in (C(ipset swap)), so packets never see a half-filled set; sets come first,
    rules next, sets nobody names any more last.
  - C(iptables-restore --test) asks the kernel for every set a rule names, so check mode (and the check before
    applying) tests the rules without their matches on sets that the run has yet to create.
  - With iptables and without O(networks), the masquerade selects traffic by destination and outbound interface
    (C(POSTROUTING) cannot match the input interface).
  - With the iptables nf_tables variant, C(state=absent) leaves the built-in chains that iptables-nft creates on
    first use (empty, policy ACCEPT).
author:
  - netkit.egress developers (@netkit)
"""

EXAMPLES = r"""
- name: Egress to an office LAN and a VPC for the mesh network
  netkit.egress.egress_gateway:
    network_interface: netmaker
    ranges:
      - 192.168.10.0/24
      - 10.20.0.0/16
      - 2001:db8:10::/48

- name: Egress to a VPC except its management subnet
  netkit.egress.egress_gateway:
    network_interface: netmaker
    ranges: [10.20.0.0/16, 2001:db8:10::/48]
    excluded_ranges: [10.20.255.0/24, 2001:db8:10:ff::/64]

- name: Two segmented networks on one gateway, rules restored at boot
  netkit.egress.egress_gateway:
    network_interface: netmaker
    networks:
      - name: engineering
        cidr: [100.64.1.0/24, fd00:1::/64]
        ranges: [10.1.0.0/16]
      - name: finance
        cidr: 100.64.2.0/24
        ranges: [10.2.0.0/16]
    persist: true

- name: Show the rules it would apply, offline
  netkit.egress.egress_gateway:
    state: rendered
    backend: iptables
    network_interface: netmaker
    interface: eth1
    ranges: [192.168.10.0/24]
  register: egress_rendered

- name: What is on the host now
  netkit.egress.egress_gateway:
    state: gathered
  register: egress_now

- name: Remove the gateway
  netkit.egress.egress_gateway:
    state: absent
"""

RETURN = r"""
backend:
  description: The backend used (nftables or iptables).
  returned: always
  type: str
  sample: nftables
iptables_variant:
  description: The iptables variant (nft or legacy) with the iptables backend, else null.
  returned: always
  type: str
  sample: legacy
backend_reason:
  description: Why this backend was chosen.
  returned: always
  type: str
  sample: no foreign iptables rules and the nft binary is present
ranges:
  description: The egress ranges, normalised (host bits cleared, lower case), including every network's ranges.
  returned: when O(full_result) is true, or state is rendered or gathered
  type: list
  elements: str
  sample: [10.0.0.0/8, 2001:db8::/32]
range_count:
  description: How many egress ranges RV(ranges) holds (or would hold with O(full_result=true)).
  returned: always
  type: int
  sample: 10000
outbound_interfaces:
  description: The outbound interfaces the ranges leave by (the values of RV(interfaces), each once, sorted).
  returned: always
  type: list
  elements: str
  sample: [eth1, eth2]
excluded_ranges:
  description: The excluded ranges, normalised (empty for state gathered, whose ranges are already cut).
  returned: always
  type: list
  elements: str
  sample: [10.20.255.0/24]
interfaces:
  description: Outbound interface of every range (ranges wholly excluded have none).
  returned: when O(full_result) is true, or state is rendered or gathered
  type: dict
  sample: {10.0.0.0/8: eth1, 2001:db8::/32: eth2}
rendered:
  description:
    - The rules that are (or would be) applied. The nft script, or for iptables a dict with the keys C(ipv4) and
      C(ipv6) whose values are iptables-restore input, and C(ipset), the C(ipset -exist restore) input of the sets.
  returned: when state is rendered, or present with O(full_result=true)
  type: raw
commands:
  description:
    - What was applied (or would be, in check mode), in order.
    - With O(full_result=false), a command with more than one line of input is shortened to its first line and
      its number of lines, for example C(nft -f - <<EOF ... (10,021 lines of input)).
  returned: always
  type: list
  elements: str
before:
  description: Canonical text of our objects and the forwarding sysctls before the run.
  returned: when O(full_result) is true, or state is rendered or gathered
  type: str
after:
  description: Canonical text of our objects and the forwarding sysctls after the run.
  returned: when O(full_result) is true, or state is rendered or gathered
  type: str
gathered:
  description:
    - What this module owns on the host now, as module parameters (only C(state=absent) if nothing).
  returned: when state is gathered
  type: dict
gathered_raw:
  description: The canonical state the gathered parameters were derived from (nft JSON, iptables-save lines).
  returned: when state is gathered
  type: dict
sysctls:
  description: Forwarding sysctls of the families in use and their values after the run.
  returned: always
  type: dict
  sample: {net.ipv4.ip_forward: "1"}
persisted_files:
  description: Files written (or kept up to date) for persistence.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.run import run

ARGUMENT_SPEC = dict(
    ranges=dict(type="list", elements="str", default=[]),
    excluded_ranges=dict(type="list", elements="str", default=[]),
    nat=dict(type="bool", default=True),
    network_interface=dict(type="str"),
    interface=dict(type="str"),
    # name and cidr are checked by the model, so that errors name the list index (networks[2].cidr).
    networks=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str"), cidr=dict(type="raw"), ranges=dict(type="list", elements="str", default=[]),
        address=dict(type="raw"))),
    reverse_nat=dict(type="bool", default=False),
    forward_accept=dict(type="bool", default=True),
    backend=dict(type="str", default="auto", choices=["auto", "nftables", "iptables"]),
    iptables_variant=dict(type="str", default="auto", choices=["auto", "nft", "legacy"]),
    state=dict(type="str", default="present", choices=["present", "absent", "rendered", "gathered"]),
    persist=dict(type="bool", default=False),
    persist_dir=dict(type="path", default="/etc/netkit-egress"),
    systemd_unit_dir=dict(type="path", default="/etc/systemd/system"),
    sysctl_dir=dict(type="path", default="/etc/sysctl.d"),
    full_result=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
