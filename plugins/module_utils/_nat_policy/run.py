# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the nat_policy module does, behind its thin shell: validate the input (``model``), read what we
hold on the host once, compute the desired table, rules, routes and sysctls (pure functions of ``model``,
``nftables``, ``routing``), diff them against the host, and hand the difference to the one transaction
engine (``_transaction``: applied in order, rolled back on a failure) unless in check mode.
"""

from __future__ import annotations

import json

from ansible_collections.netkit.egress.plugins.module_utils import _nft_table
from ansible_collections.netkit.egress.plugins.module_utils import _transaction
from ansible_collections.netkit.egress.plugins.module_utils._host import Host, HostLock
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy import model
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy import nftables as nft
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy import persist
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy import routing
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.module_utils._transaction import Transaction

STATE_FILE = "/etc/netkit-egress/nat_policy.json"


# ---- input ----------------------------------------------------------------------------------
def validated_input(params):
    numbering = model.build_numbering(params)
    cleaned = model.validate_config_entries(params["config"], params["state"])
    return_routes = model.validate_return_routes(params["return_routes"], params["role"])
    return numbering, cleaned, return_routes


def nft_command_lines(script):
    return ["nft -f - <<'EOF'"] + script.rstrip("\n").split("\n") + ["EOF"]


def rendered_commands(role, cleaned, return_routes, numbering):
    """``state: rendered``: everything for an empty host, from the input alone."""
    policies = model.desired_policies("overridden", cleaned, [])
    slots = model.allocate_slots(policies, {}, numbering.slot_count) if role == "source" else {}
    interfaces = {policy.egress_ip: policy.interface for policy in policies}
    script = nft.render_script(role, policies, slots, numbering)
    wanted_routes = (routing.desired_slot_routes(slots, interfaces, numbering)
                     + routing.desired_return_routes(return_routes or []))
    adds, _removals = routing.routing_changes([], routing.desired_rules(slots, numbering), [],
                                              wanted_routes, numbering.route_protocol)
    return nft_command_lines(script) + routing.command_lines(adds)


# ---- host state -----------------------------------------------------------------------------
class HeldState:
    """Everything of ours on the host, read once."""

    def __init__(self, host, role, numbering):
        self.table = nft.parse_table(host.nft_table_json(nft.TABLE_FAMILY, nft.TABLE_NAME), numbering)
        self.rules, routes = [], []
        protocol = str(numbering.route_protocol)
        for family in routing.FAMILIES:
            self.rules += routing.owned_rules(host.ip_json("rule", "show", family=family), family, numbering)
            routes += routing.owned_routes(
                host.ip_json("route", "show", "table", "all", "proto", protocol, family=family),
                family, numbering, include_main=role == "gateway")
        self.slot_routes = [route for route in routes if route.table != "main"]
        self.main_routes = [route for route in routes if route.table == "main"]
        interfaces = routing.slot_interfaces(self.slot_routes, self.table.slots)
        if self.table.role == "source":
            self.policies = [with_interface(policy, interfaces.get(policy.egress_ip))
                             for policy in self.table.policies]
        else:
            self.policies = list(self.table.policies)
        self.return_routes = [model.ReturnRoute(route.destination, route.via) for route in self.main_routes]


def with_interface(policy, interface):
    return model.Policy(name=policy.name, egress_ip=policy.egress_ip, sources=policy.sources,
                        destinations=policy.destinations,
                        excluded_destinations=policy.excluded_destinations, interface=interface)


def resolve_interfaces(host, role, policies):
    """Source nodes route each egress IP out of one concrete device: fill it in and check it."""
    # A device from the kernel's own route exists: only given interfaces need the list of links.
    links = set(host.link_names()) if any(policy.interface is not None for policy in policies) else set()
    resolved = []
    device_of_egress = {}
    # Every egress IP's route in one `ip -batch` process (1,000 policies: one process, not 1,000).
    routes = host.route_get_many(list(dict.fromkeys(
        policy.egress_ip for policy in policies if policy.interface is None and role == "source")))
    for policy in policies:
        interface = policy.interface
        if interface is None and role == "source":
            route = routes.get(policy.egress_ip) or {}
            interface = route.get("dev")
            if not interface:
                raise InputError(f"policy {policy.name}: interface",
                                 problem=f"no route to egress_ip {policy.egress_ip} on this host")
            if route.get("type") == "local":
                raise InputError(f"policy {policy.name}: egress_ip",
                                 problem=f"{policy.egress_ip} is an address of this host; role source steers "
                                         "traffic to another host")
        if policy.interface is not None and interface not in links:
            raise InputError(f"policy {policy.name}: interface", interface, "does not exist on this host")
        if role == "source":
            held_device = device_of_egress.setdefault(policy.egress_ip, interface)
            if held_device != interface:
                raise InputError(f"policy {policy.name}: interface", interface,
                                 f"differs from {held_device!r} of another policy with egress_ip "
                                 f"{policy.egress_ip}")
        resolved.append(with_interface(policy, interface))
    return resolved


def saved_sysctls(record):
    """The original values our record (the text of STATE_FILE, or None) keeps."""
    try:
        return dict(json.loads(record).get("sysctl_originals", {})) if record else {}
    except (ValueError, AttributeError):
        return {}


def sysctl_changes(host, role, policies, record):
    """``(report, changes, saved)``: name -> before/after, the writes to make, originals to keep."""
    saved = saved_sysctls(record)
    wanted = routing.desired_sysctls(role, policies, host.sysctl_get)
    report, changes = {}, {}
    for name, value in wanted.items():
        current = host.sysctl_get(name)
        if current is None:
            raise InputError(f"sysctl {name}", problem="not present on this host")
        report[name] = {"before": current, "after": value}
        if current != value:
            changes[name] = value
            saved.setdefault(name, current)
    if not policies:
        # Nothing of ours is left: give back the values we changed.
        for name, original in saved.items():
            current = host.sysctl_get(name)
            if current is not None and current != original:
                report[name] = {"before": current, "after": original}
                changes[name] = original
        saved = {}
    return report, changes, saved


# ---- run ------------------------------------------------------------------------------------
def run_nat_policy(module):
    """The module's result; raises InputError (bad input, nothing changed) or HostError."""
    params = module.params
    role, state = params["role"], params["state"]
    numbering, cleaned, return_routes = validated_input(params)
    if state == "rendered":
        return {"changed": False, "rendered": rendered_commands(role, cleaned, return_routes, numbering)}

    host = Host(module)
    # Two runs against one host must not interleave their read-diff-apply.
    with HostLock():
        return converge(module, host, params, numbering, cleaned, return_routes)


def converge(module, host, params, numbering, cleaned, return_routes):
    role, state = params["role"], params["state"]
    held = HeldState(host, role, numbering)
    before = model.policies_as_dicts(held.policies)
    held_return = [route.to_dict() for route in held.return_routes]
    if state == "gathered":
        return {"changed": False, "gathered": before, "return_routes": held_return}

    policies = resolve_interfaces(host, role, model.desired_policies(state, cleaned, held.policies))
    if state == "deleted" and not cleaned:
        return_routes = []
    elif return_routes is None:
        return_routes = held.return_routes if role == "gateway" else []
    slots = (model.allocate_slots(policies, held.table.slots, numbering.slot_count)
             if role == "source" else {})

    script = None
    if not nft.table_matches(held.table, role, policies, slots):
        script = nft.render_script(role, policies, slots, numbering)
    interfaces = {policy.egress_ip: policy.interface for policy in policies}
    routing_args = (held.rules, routing.desired_rules(slots, numbering), held.slot_routes + held.main_routes,
                    routing.desired_slot_routes(slots, interfaces, numbering)
                    + routing.desired_return_routes(return_routes),
                    numbering.route_protocol)
    adds, removals = routing.routing_changes(*routing_args)
    record = host.read_file(STATE_FILE)
    sysctl_report, sysctl_writes, saved = sysctl_changes(host, role, policies, record)
    boot_files = persisted_files(host, params, role, policies, slots, interfaces, return_routes, numbering,
                                 sysctl_report)
    persist_dir, unit_dir = params["persist_dir"], params["systemd_unit_dir"]
    files, changed_files, files_before, files_after = _transaction.file_transactions(
        host, boot_files, persist.all_paths(persist_dir, unit_dir))

    commands = (nft_command_lines(script) if script else []) + routing.command_lines(adds) \
        + routing.command_lines(removals) + [_transaction.describe(item) for item in files]
    changed = bool(commands or sysctl_writes)
    if changed and not module.check_mode:
        undo_adds, undo_removals = routing.routing_undo(*routing_args)
        table = table_transactions(script)
        # The boot files last: when the datapath fails they are not written, when they fail it is rolled back.
        transactions = (record_transactions(record, saved) + sysctl_transactions(sysctl_report, sysctl_writes)
                        + batch_transactions("rules and routes", adds, undo_adds) + table
                        + batch_transactions("removal of rules and routes", removals, undo_removals) + files)
        # The kernel checks the script first only when routing changes that packets would feel go before
        # it: a source node without our table yet has no packet carrying our marks, so new rules and slot
        # routes steer nothing until the table exists (and are undone if it fails): one nft process less.
        adds_inert = role == "source" and not held.table.exists
        if any(adds.values()) and not adds_inert:
            _transaction.check(host, table)
        _transaction.apply(host, transactions)
        if persist.unit_path(unit_dir) in changed_files and host.systemd_running():
            host.boot_unit(persist.UNIT, enabled=bool(boot_files))

    after = model.policies_as_dicts(policies)
    after_return = [route.to_dict() for route in return_routes]
    result = {"changed": changed, "before": before, "after": after, "commands": commands,
              "return_routes": after_return, "sysctls": sysctl_report, "persisted_files": sorted(boot_files)}
    if module._diff:
        result["diff"] = {
            "before": {"config": before, "return_routes": held_return,
                       "sysctls": {name: values["before"] for name, values in sysctl_report.items()},
                       "files": files_before},
            "after": {"config": after, "return_routes": after_return,
                      "sysctls": {name: values["after"] for name, values in sysctl_report.items()},
                      "files": files_after},
        }
    return result


def persisted_files(host, params, role, policies, slots, interfaces, return_routes, numbering, sysctl_report):
    """The boot files of the datapath this run leaves (``{path: (content, mode)}``; {} without ``persist``)."""
    if not params["persist"]:
        return {}
    script = nft.render_script(role, policies, slots, numbering) if policies else None
    boot_batches, _removals = routing.routing_changes(
        [], routing.desired_rules(slots, numbering), [],
        routing.desired_slot_routes(slots, interfaces, numbering) + routing.desired_return_routes(return_routes),
        numbering.route_protocol)
    binaries = {name: host.which(name) or f"/usr/sbin/{name}" for name in ("sysctl", "nft", "ip")}
    sysctls = {name: values["after"] for name, values in sysctl_report.items()} if policies else {}
    return persist.render_files(sysctls, script,
                                boot_batches, binaries, params["persist_dir"],
                                params["systemd_unit_dir"] if host.systemd_running() else None)


def record_transactions(record, saved):
    """Keep the sysctls' original values (written first: a run that dies later still knows them), or
    remove the record when nothing of ours is left."""
    text = json.dumps({"sysctl_originals": saved}, indent=2, sort_keys=True) + "\n" if saved else None
    if text == record:
        return []
    if text is None:
        return [Transaction("record of sysctls", "remove", "", target=(STATE_FILE,), undo=record,
                            undo_tool="write")]
    # Without an earlier record the undo removes the file (its payload is only the path, for the record).
    return [Transaction("record of sysctls", "write", text, target=(STATE_FILE,),
                        undo=record or STATE_FILE, undo_tool=None if record else "remove")]


def sysctl_transactions(report, writes):
    return [Transaction(f"sysctl {name}", "sysctl", value, target=(name,), undo=report[name]["before"])
            for name, value in writes.items()]


def batch_transactions(label, batches, undo):
    return [Transaction(f"{label} {family}", "ip-batch", "".join(line + "\n" for line in lines),
                        target=(family,), undo="".join(line + "\n" for line in undo[family]) or None)
            for family, lines in batches.items() if lines]


def table_transactions(script):
    """Our whole table in one ``nft -f`` (all or nothing); its undo, the table as it is read just before,
    is read only when a later transaction could fail."""
    if not script:
        return []
    return [Transaction("nftables", "nft", script,
                        snapshot=_nft_table.snapshot(nft.TABLE_FAMILY, nft.TABLE_NAME))]
