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
      - With O(networks), every network's ranges are added. A range that no network lists is then reachable
        by nobody (traffic from O(network_interface) into any egress range is dropped unless a network allows it).
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
        IPv6 range). A range without a route fails naming the range.
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
  returned: always
  type: list
  elements: str
  sample: [10.0.0.0/8, 2001:db8::/32]
interfaces:
  description: Outbound interface of every range.
  returned: always
  type: dict
  sample: {10.0.0.0/8: eth1, 2001:db8::/32: eth2}
rendered:
  description:
    - The rules that are (or would be) applied. The nft script, or for iptables a dict with the keys C(ipv4) and
      C(ipv6) whose values are iptables-restore input, and C(ipset), the C(ipset -exist restore) input of the sets.
  returned: when state is rendered or present
  type: raw
commands:
  description: What was applied (or would be, in check mode), in order.
  returned: always
  type: list
  elements: str
before:
  description: Canonical text of our objects and the forwarding sysctls before the run.
  returned: always
  type: str
after:
  description: Canonical text of our objects and the forwarding sysctls after the run.
  returned: always
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

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.netkit.egress.plugins.module_utils import _egress_iptables as ipt
from ansible_collections.netkit.egress.plugins.module_utils import _egress_ipset as ipset
from ansible_collections.netkit.egress.plugins.module_utils import _egress_nft as nft
from ansible_collections.netkit.egress.plugins.module_utils import _persist as persist
from ansible_collections.netkit.egress.plugins.module_utils._backend import BackendError, VARIANTS, decide
from ansible_collections.netkit.egress.plugins.module_utils._egress_model import (
    FAMILIES, ModelError, build_plan, desired_sysctls, family_of, route_probe_addresses, validate)
from ansible_collections.netkit.egress.plugins.module_utils import _rollback as rollback
from ansible_collections.netkit.egress.plugins.module_utils._host import Host, HostError, HostLock
from ansible_collections.netkit.egress.plugins.module_utils._route_lookup import UNKNOWN, RouteLookup

ARGUMENT_SPEC = dict(
    ranges=dict(type="list", elements="str", default=[]),
    nat=dict(type="bool", default=True),
    network_interface=dict(type="str"),
    interface=dict(type="str"),
    # name and cidr are checked by the model, so that errors name the list index (networks[2].cidr).
    networks=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str"), cidr=dict(type="raw"), ranges=dict(type="list", elements="str", default=[]))),
    reverse_nat=dict(type="bool", default=False),
    forward_accept=dict(type="bool", default=True),
    backend=dict(type="str", default="auto", choices=["auto", "nftables", "iptables"]),
    iptables_variant=dict(type="str", default="auto", choices=["auto", "nft", "legacy"]),
    state=dict(type="str", default="present", choices=["present", "absent", "rendered", "gathered"]),
    persist=dict(type="bool", default=False),
    persist_dir=dict(type="path", default="/etc/netkit-egress"),
    systemd_unit_dir=dict(type="path", default="/etc/systemd/system"),
    sysctl_dir=dict(type="path", default="/etc/sysctl.d"),
)


class Failure(Exception):
    """A user-facing error; nothing on the host has been changed when it is raised before apply."""


# ---- reading the host -----------------------------------------------------------------------
def read_firewall(host):
    """Everything we need to decide and compare, read once: our nft table and the iptables-save dumps."""
    state = {"nft_available": host.has("nft"), "nft_table": None, "saves": {}}
    if state["nft_available"]:
        state["nft_table"] = host.nft_table_json(nft.TABLE_FAMILY, nft.TABLE_NAME)
    for variant in VARIANTS:
        for family in FAMILIES:
            binary = Host.iptables_binary(family, variant, "save")
            if host.has(binary):
                skip = variant == "legacy" and not Host.legacy_tables_loaded(family)
                state["saves"].setdefault(variant, {})[family] = "" if skip else host.run([binary])[1]
    state["ipset_available"] = host.has("ipset")
    state["ipsets"] = ipset.parse_save(host.ipset_save()) if state["ipset_available"] else {}
    version = host.iptables_version("") if host.has("iptables") else None
    state["default_variant"] = None if version is None else ("legacy" if "legacy" in version else "nft")
    return state


def route_answers(host, addresses):
    """{address: ``ip route get`` answer or None}. Answered from one read of the rules and tables where
    ``_route_lookup`` is certain of the kernel's answer, by the kernel itself (one ``ip -batch``) elsewhere."""
    lookups, answers, ask = {}, {}, []
    for address in addresses:
        family = family_of(address)
        if family not in lookups:
            lookups[family] = RouteLookup(*host.routing_state(family), family)
        answer = lookups[family].lookup(address)
        if answer == UNKNOWN:
            ask.append(address)
        else:
            answers[address] = answer
    asked = host.route_get_many(ask)
    answers.update({address: asked.get(address) for address in ask})
    return answers


def resolve_interfaces(config, host):
    if config.interface:
        return {cidr: config.interface for cidr in config.ranges}
    # The best probe of every range first, the second probe only where the first found nothing usable.
    # A local answer (dev lo) means the probe hit one of our own addresses, not the range's route.
    probes = {cidr: route_probe_addresses(cidr) for cidr in config.ranges}
    answers = route_answers(host, list(dict.fromkeys(addresses[0] for addresses in probes.values())))

    def usable(route):
        return route if route and route.get("dev") and route["dev"] != "lo" else None

    second = [addresses[1] for addresses in probes.values()
              if len(addresses) > 1 and not usable(answers.get(addresses[0]))]
    answers.update(route_answers(host, list(dict.fromkeys(second))))
    interfaces = {}
    for cidr in config.ranges:
        route = next((usable(answers.get(address)) for address in probes[cidr] if usable(answers.get(address))), None)
        if route is None:
            raise Failure(f"{config.field_of(cidr)}: no {family_of(cidr)} route to {cidr} on the host; "
                          "add one or set interface")
        interfaces[cidr] = route["dev"]
    return interfaces


# ---- desired vs current ---------------------------------------------------------------------
def iptables_states(firewall):
    """{variant: {family: parsed state of our chains}}"""
    return {variant: {family: ipt.parse_save(text, firewall.get("ipsets")) for family, text in by_family.items()}
            for variant, by_family in firewall["saves"].items()}


def current_objects(firewall):
    """{label: canonical text} of everything we own now, across both backends."""
    objects = {}
    canonical = nft.current_canonical(firewall["nft_table"])
    if canonical is not None:
        objects["nftables"] = canonical
    for variant, by_family in iptables_states(firewall).items():
        for family, parsed in by_family.items():
            canonical = ipt.current_canonical(parsed)
            if canonical is not None:
                objects[f"iptables-{variant} {family}"] = canonical
    return objects


def desired_changes(plan, decision, firewall, current):
    """(desired objects, rendered, list of (label, kind, payload) actions) to go from ``current`` (what
    ``current_objects`` read) to desired."""
    states = iptables_states(firewall)
    desired, actions, keep_sets = {}, [], ()
    if decision.backend == "nftables":
        script = nft.render_script(plan)
        desired["nftables"] = nft.desired_canonical(plan)
        if current.get("nftables") != desired["nftables"]:
            actions.append(("nftables", "nft", script))
        rendered = script
    else:
        if not firewall.get("ipset_available"):
            raise Failure("backend: the iptables backend matches ranges with ipset sets, and the ipset binary is "
                          "not on the host (install the ipset package, or use backend: nftables)")
        rendered, boot = {}, {}
        for family in plan.families:
            parsed = states.get(decision.variant, {}).get(family)
            if parsed is None:
                raise Failure(f"backend: {Host.iptables_binary(family, decision.variant, 'save')} is not installed")
            label = f"iptables-{decision.variant} {family}"
            desired[label] = ipt.desired_canonical(plan, family)
            jumps = {table: parsed[table]["jumps"] > 0 for table in ipt.OUR_CHAINS}
            rendered[family] = ipt.render_restore(plan, family, jumps)
            boot[family] = ipt.render_restore(plan, family)
            if current.get(label) != desired[label]:
                actions.append((label, ("iptables", decision.variant, family), rendered[family]))
        sets, existing = ipset.desired_sets(plan), firewall["ipsets"]
        rendered["ipset"] = boot["ipset"] = ipset.render_restore(sets)
        if actions:
            # Sets are prepared before the rules (a rule cannot name a set that does not exist) and swapped
            # in after them: a failed rule change is undone by destroying what was prepared.
            prepare, commit = ipset.render_prepare(sets, existing), ipset.render_commit(sets, existing)
            if prepare:
                undo = ipset.render_destroy(ipset.prepared_names(sets, existing))
                actions.insert(0, ("ipset", ("ipset", undo), prepare))
            if commit:
                swapped = {name: existing[name] for name in ipset.changed_sets(sets, existing) if name in existing}
                # Undone by swapping the old content back; the undo of the preparation then destroys NAME-new.
                actions.append(("ipset", ("ipset", ipset.render_restore(swapped, keep_temp=True)), commit))
        rendered = {"apply": rendered, "boot": boot}
        keep_sets = set(sets)
    actions += leftover_removals(firewall, desired, states, keep_sets)
    return desired, rendered, actions


def leftover_removals(firewall, keep, states, keep_sets=()):
    """Remove what we own that is not part of the desired state (another backend, variant or family)."""
    actions = []
    if firewall["nft_table"] is not None and "nftables" not in keep:
        actions.append(("nftables", "nft", nft.render_delete_script()))
    for variant, by_family in states.items():
        for family, parsed in by_family.items():
            label = f"iptables-{variant} {family}"
            if label not in keep and ipt.current_canonical(parsed) is not None:
                actions.append((label, ("iptables", variant, family), ipt.render_removal(parsed)))
    stale_sets = [name for name in firewall.get("ipsets", {}) if name not in keep_sets]
    if stale_sets:
        # Last: only once no rule of ours names them any more.
        actions.append(("ipset", ("ipset", ""), ipset.render_destroy(stale_sets)))
    return actions


def is_ipset(kind):
    return isinstance(kind, tuple) and kind[0] == "ipset"


def describe(action):
    label, kind, payload = action
    if kind == "nft":
        return f"nft -f - <<EOF\n{payload}EOF"
    if is_ipset(kind):
        return f"ipset -exist restore <<EOF\n{payload}EOF"
    variant, family = kind[1:]
    return f"{Host.iptables_binary(family, variant, 'restore')} --noflush <<EOF\n{payload}EOF"


def validate_actions(host, actions, firewall=None):
    """Let the kernel check every transaction before the first one is applied. ipset has no test mode:
    its input is rendered from validated CIDRs and generated names only. iptables-restore --test asks the
    kernel for every set a rule names, so matches on sets this run creates are left out of the test."""
    existing_sets = set((firewall or {}).get("ipsets", {}))
    for _label, kind, payload in actions:
        if kind == "nft":
            host.nft_check(payload)
        elif not is_ipset(kind):
            variant, family = kind[1:]
            host.iptables_restore(family, variant, ipt.testable(payload, existing_sets), test=True)


def apply_actions(host, actions, firewall):
    """Apply every transaction; when one fails, put back what the earlier ones (and a half-committed
    iptables-restore file, whose tables commit one by one) changed, and say so in the error."""
    # The table's text is needed only to undo an nft transaction when a later one fails (reading it
    # costs as much as the apply itself at 10,000 ranges).
    nft_before = host.nft_table_text(nft.TABLE_FAMILY, nft.TABLE_NAME) \
        if any(kind == "nft" for _label, kind, _payload in actions[:-1]) else None
    for index, (label, kind, payload) in enumerate(actions):
        try:
            if kind == "nft":
                host.nft_apply(payload)
            elif is_ipset(kind):
                host.ipset_restore(payload)
            else:
                variant, family = kind[1:]
                host.iptables_restore(family, variant, payload)
        except HostError as exc:
            # An nft -f that failed changed nothing (one kernel transaction); an iptables-restore file
            # may have committed its first table.
            done = actions[:index] + ([] if kind == "nft" else [actions[index]])
            problems = undo_actions(host, done, firewall, nft_before)
            outcome = (f"rolling back failed too: {'; '.join(problems)}" if problems
                       else "everything applied before it was rolled back, the host is as it was")
            raise HostError(f"applying {label} failed: {exc}; {outcome}") from None


def undo_actions(host, done, firewall, nft_before):
    problems = []
    for label, kind, _payload in reversed(done):
        try:
            if kind == "nft":
                host.nft_apply(rollback.nft_table_restore(nft.TABLE_FAMILY, nft.TABLE_NAME, nft_before))
            elif is_ipset(kind):
                if kind[1]:
                    host.ipset_restore(kind[1])
            else:
                variant, family = kind[1:]
                text = rollback.iptables_restore_previous(firewall["saves"][variant][family],
                                                          host.iptables_save(family, variant))
                if text:
                    host.iptables_restore(family, variant, text)
        except HostError as exc:
            problems.append(f"{label}: {exc}")
    return problems


def objects_text(objects, sysctls):
    parts = [f"# {label}\n{text}" for label, text in sorted(objects.items())]
    if sysctls:
        parts.append("# sysctl\n" + "".join(f"{name} = {value}\n" for name, value in sorted(sysctls.items())))
    return "".join(parts)


# ---- persistence ----------------------------------------------------------------------------
def persist_binaries(host, decision):
    binaries = {"sysctl": host.which("sysctl") or "/sbin/sysctl", "nft": host.which("nft") or "/usr/sbin/nft"}
    if decision.variant:
        for family in FAMILIES:
            name = Host.iptables_binary(family, decision.variant, "restore")
            binaries[family] = host.which(name) or f"/usr/sbin/{name}"
        binaries["ipset"] = host.which("ipset") or "/usr/sbin/ipset"
    return binaries


def persistence_changes(host, params, wanted):
    """(files to write {path: content}, files to remove [path])."""
    manifest_path = os.path.join(params["persist_dir"], persist.MANIFEST_FILE)
    owned = set(persist.all_paths(params["persist_dir"], params["sysctl_dir"], params["systemd_unit_dir"]))
    owned |= set(persist.parse_manifest(host.read_file(manifest_path))) | {manifest_path}
    desired = dict(wanted)
    if wanted:
        desired[manifest_path] = persist.render_manifest(wanted)
    writes = {path: content for path, content in desired.items() if host.read_file(path) != content}
    removals = sorted(path for path in owned if path not in desired and os.path.exists(path))
    return writes, removals


def systemd_running():
    return os.path.isdir("/run/systemd/system")


# ---- states ---------------------------------------------------------------------------------
def run_rendered(params, config):
    backend = "nftables" if params["backend"] == "auto" else params["backend"]
    if config.ranges and not config.interface:
        raise Failure("interface: required with state=rendered when there are ranges "
                      "(rendering runs offline, without route lookups)")
    interfaces = {cidr: config.interface for cidr in config.ranges}
    plan = build_plan(config, interfaces)
    if backend == "nftables":
        rendered = nft.render_script(plan)
        variant = None
    else:
        rendered = {family: ipt.render_restore(plan, family) for family in plan.families}
        rendered["ipset"] = ipset.render_restore(ipset.desired_sets(plan))
        variant = params["iptables_variant"] if params["iptables_variant"] != "auto" else None
    return dict(changed=False, backend=backend, iptables_variant=variant,
                backend_reason="state=rendered runs offline: "
                + ("backend auto renders nftables" if params["backend"] == "auto" else f"backend {backend} requested"),
                ranges=list(config.ranges), interfaces=interfaces, rendered=rendered, commands=[],
                before="", after="", sysctls=desired_sysctls(config.ranges), persisted_files=[])


def run_gathered(host):
    firewall = read_firewall(host)
    gathered_raw = {"nftables": firewall["nft_table"], "iptables": {}}
    found = nft.gather(firewall["nft_table"])
    backend, variant = ("nftables", None) if found else (None, None)
    for candidate, by_family in iptables_states(firewall).items():
        for family, parsed in by_family.items():
            if ipt.current_canonical(parsed) is not None:
                gathered_raw["iptables"].setdefault(candidate, {})[family] = ipt.current_canonical(parsed)
        if found is None:
            found = ipt.gather(by_family)
            if found:
                backend, variant = "iptables", candidate
                found[0]["iptables_variant"] = candidate
    gathered, interfaces = found if found else ({"state": "absent"}, {})
    ranges = gathered.get("ranges", []) + [c for n in gathered.get("networks", []) for c in n["ranges"]]
    objects = current_objects(firewall)
    return dict(changed=False, backend=backend, iptables_variant=variant,
                backend_reason="state=gathered reports the backend whose objects exist on the host",
                ranges=list(dict.fromkeys(ranges)), interfaces=interfaces, gathered=gathered,
                gathered_raw=gathered_raw, commands=[], before=objects_text(objects, {}),
                after=objects_text(objects, {}), sysctls={}, persisted_files=[])


def run_converge(module, host, params, config):
    present = params["state"] == "present"
    if present:
        links = host.link_names()
        for field_name in ("network_interface", "interface"):
            if params[field_name] and params[field_name] not in links:
                raise Failure(f"{field_name}: interface {params[field_name]!r} does not exist on the host")
    firewall = read_firewall(host)
    try:
        decision = decide(params["backend"], params["iptables_variant"], firewall["nft_available"],
                          firewall["default_variant"], firewall["saves"])
    except BackendError as exc:
        if present:
            raise Failure(str(exc)) from None
        decision = None
    before_objects = current_objects(firewall)
    interfaces, rendered, persisted = {}, None, []
    if present:
        interfaces = resolve_interfaces(config, host)
        plan = build_plan(config, interfaces)
        desired, rendered, actions = desired_changes(plan, decision, firewall, before_objects)
    else:
        desired, actions = {}, leftover_removals(firewall, {}, iptables_states(firewall))

    wanted_sysctls = desired_sysctls(config.ranges) if present else {}
    current_sysctls = {name: host.sysctl_get(name) for name in wanted_sysctls}
    sysctl_changes = {name: value for name, value in wanted_sysctls.items() if current_sysctls[name] != value}

    wanted_files = {}
    if present and params["persist"]:
        rules = rendered if decision.backend == "nftables" else rendered["boot"]
        wanted_files = persist.render_files(decision.backend, rules, wanted_sysctls, persist_binaries(host, decision),
                                            params["persist_dir"], params["sysctl_dir"], params["systemd_unit_dir"])
        persisted = sorted(wanted_files)
    writes, removals = persistence_changes(host, params, wanted_files)

    if module.check_mode or [kind for _label, kind, _payload in actions] != ["nft"]:
        # A single nft transaction is all or nothing by itself: checking it first with `nft -c` would
        # only double its cost. Check mode, and runs with several transactions, check each one first.
        validate_actions(host, actions, firewall)
    commands = [describe(action) for action in actions]
    commands += [f"sysctl -w {name}={value}" for name, value in sorted(sysctl_changes.items())]
    commands += [f"write {path}" for path in sorted(writes)] + [f"remove {path}" for path in removals]
    if not module.check_mode:
        apply_actions(host, actions, firewall)
        for name, value in sorted(sysctl_changes.items()):
            host.sysctl_set(name, value)
        for path, content in sorted(writes.items()):
            host.write_file(path, content)
        for path in removals:
            host.remove_file(path)
        unit_touched = any(path.endswith(persist.UNIT_FILE) for path in list(writes) + removals)
        if unit_touched and systemd_running() and host.has("systemctl"):
            host.run(["systemctl", "daemon-reload"])
            if present and params["persist"]:
                host.run(["systemctl", "enable", persist.UNIT_FILE])
    after_sysctls = dict(current_sysctls, **sysctl_changes)
    changed = bool(actions or sysctl_changes or writes or removals)
    result = dict(changed=changed,
                  backend=decision.backend if decision else None,
                  iptables_variant=decision.variant if decision else None,
                  backend_reason=decision.reason if decision else "no backend available",
                  ranges=list(config.ranges), interfaces=interfaces, commands=commands,
                  before=objects_text(before_objects, current_sysctls),
                  after=objects_text(desired, after_sysctls),
                  sysctls=after_sysctls, persisted_files=persisted)
    if rendered is not None:
        result["rendered"] = rendered if decision.backend == "nftables" else rendered["apply"]
    if module._diff:
        result["diff"] = {"before": result["before"], "after": result["after"]}
    return result


def run(module):
    params = module.params
    state = params["state"]
    try:
        config = validate(params, require_network_interface=state in ("present", "rendered"))
        if state == "rendered":
            return run_rendered(params, config)
        host = Host(module)
        # Two runs against one host must not interleave their read-decide-apply.
        with HostLock():
            if state == "gathered":
                return run_gathered(host)
            return run_converge(module, host, params, config)
    except (ModelError, Failure) as exc:
        module.fail_json(msg=str(exc))
    except HostError as exc:
        module.fail_json(msg=str(exc))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
