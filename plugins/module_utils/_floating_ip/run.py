# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""floating_ip's run: read the host once, plan (``model``), apply the address batch and the state file
through the one transaction engine, announce what was added (``announce``)."""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils import _transaction as transaction
from ansible_collections.netkit.egress.plugins.module_utils._floating_ip import announce, model, persist
from ansible_collections.netkit.egress.plugins.module_utils._host import Host, HostError, HostLock
from ansible_collections.netkit.egress.plugins.module_utils._transaction import Transaction

STATE_FILE_MODE = 0o644


def run(module):
    """The module's result; raises ``_net.InputError`` (bad input, nothing changed) or HostError."""
    host = Host(module)
    # Two runs against one host must not interleave their read-plan-apply.
    with HostLock():
        return converge(module, host)


def read_host(host, state_file):
    """(``ip -j addr show``, its addresses, the state file's records, the state file's text): read once."""
    ip_addr = host.ip_json("address", "show")
    state_text = host.read_file(state_file)
    return ip_addr, model.host_addresses(ip_addr), model.parse_state(state_text, state_file), state_text


def batch_text(lines):
    return "".join(line + "\n" for line in lines)


def transactions(commands, undo_commands, state_file, held_after, state_text, files):
    """The address batch (when there is one), the state file, then the boot files."""
    planned = []
    if commands:
        planned.append(Transaction("addresses", "ip-batch", batch_text(commands), undo=batch_text(undo_commands)))
    planned.append(Transaction("state file", "write", model.render_state(held_after), undo=state_text,
                               target=(state_file, STATE_FILE_MODE)))
    return planned + files


def boot_files(host, params, held_after):
    """The boot files of the addresses this run leaves (``{path: (content, mode)}``; {} without ``persist``)."""
    if not params["persist"]:
        return {}
    return persist.render_files(held_after, host.which("ip") or "/usr/sbin/ip", params["persist_dir"],
                                params["systemd_unit_dir"] if host.systemd_running() else None)


def record_reality(host, state_file, candidates, state_text):
    """After a failed apply: record exactly the candidates the host really has, nothing else (an address
    the roll-back could not remove stays ours). Returns what went wrong doing so, or ''."""
    try:
        on_host = model.host_addresses(host.ip_json("address", "show"))
        held = list(dict.fromkeys(model.owned(candidates, on_host)))
        text = model.render_state(held)
        if text != state_text and (held or state_text is not None):
            transaction.apply(host, [Transaction("state file", "write", text, target=(state_file, STATE_FILE_MODE))])
    except HostError as exc:
        return f"; recording the addresses held in {state_file} failed too: {exc}"
    return ""


def announce_added(module, host, items, ip_addr):
    macs = announce.link_macs(ip_addr)
    announced = []
    for item in items:
        if item.interface not in macs:
            continue
        router = host.sysctl_get(f"net.ipv6.conf.{item.interface}.forwarding") == "1"
        try:
            host.send_frames(item.interface, announce.announcement_frames(item, macs[item.interface], router))
            announced.append(item.address)
        except HostError as exc:
            module.warn(f"floating IP {item.address} was added but not announced: {exc}")
    return announced


def converge(module, host):
    params = module.params
    state, state_file = params["state"], params["state_file"]
    addresses = [] if state == "gathered" else model.parse_addresses(params["addresses"])
    ip_addr, on_host, records, state_text = read_host(host, state_file)
    held = model.owned(records, on_host)
    desired = []
    if state in ("present", "exact"):
        desired = model.desired_addresses(addresses, params["interface"], params["prefix_length"], on_host, held,
                                          [link["ifname"] for link in ip_addr])
    to_remove, to_add = model.plan(state, addresses, desired, held)
    held_after = model.after(held, to_remove, to_add)
    commands = model.batch_commands(to_remove, to_add)
    # Records of addresses that vanished from the host are dropped, so a later hand-made address
    # with the same value is never mistaken for ours.
    state_changes = state != "gathered" and model.sort_held(records) != model.sort_held(held_after)
    wanted_files = {} if state == "gathered" else boot_files(host, params, held_after)
    files, changed_files, files_before, files_after = ([], [], {}, {}) if state == "gathered" else \
        transaction.file_transactions(host, wanted_files, persist.all_paths(params["persist_dir"],
                                                                            params["systemd_unit_dir"]))
    announced = []
    if not module.check_mode and (commands or state_changes or files):
        try:
            transaction.apply(host, transactions(commands, model.undo_commands(to_remove, to_add), state_file,
                                                 held_after, state_text, files))
        except HostError as exc:
            raise HostError(f"{exc}{record_reality(host, state_file, held + to_add, state_text)}") from None
        if persist.unit_path(params["systemd_unit_dir"]) in changed_files and host.systemd_running():
            host.boot_unit(persist.UNIT, enabled=bool(wanted_files))
        if params["announce"]:
            announced = announce_added(module, host, to_add, ip_addr)
    result = {
        "changed": bool(commands) or state_changes or bool(files),
        "added": [item.address for item in to_add],
        "removed": [item.address for item in to_remove],
        "announced": announced,
        "commands": commands + [transaction.describe(item) for item in files],
        "addresses": [model.as_dict(item) for item in held_after],
        "persisted_files": sorted(wanted_files),
    }
    if state == "gathered":
        default_routes = {family: host.ip_json("route", "show", "default", family=family)
                          for family in ("ipv4", "ipv6")}
        result["host_network"] = model.host_network(ip_addr, default_routes)
    if module._diff:
        # Mappings, because Ansible's diff display serialises mappings but not lists.
        result["diff"] = {"before": {"addresses": [model.as_dict(item) for item in model.sort_held(held)],
                                     "files": files_before},
                          "after": {"addresses": result["addresses"], "files": files_after}}
    return result
