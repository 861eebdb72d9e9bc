# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vrrp_gateway run: read the host once, render every file (pure), write what differs through the one
transaction engine, then start, reload or stop the daemons. Check mode stops before the first write."""

from __future__ import annotations

import inspect
import json
import sys

from ansible_collections.netkit.egress.plugins.module_utils import _transaction as engine
from ansible_collections.netkit.egress.plugins.module_utils._vrrp_gateway import boot, conntrackd, fence, keepalived, model
from ansible_collections.netkit.egress.plugins.module_utils._vrrp_gateway.paths import UNIT_NAMES, Paths

EXECUTABLE = 0o755
PRIVATE = 0o600


def paths_of(params):
    return Paths(params["config_dir"], params["run_dir"], params["unit_dir"])


def fence_program():
    """The fence's own source, run by the target's Python (it needs only the standard library)."""
    return f"#!{sys.executable}\n" + inspect.getsource(fence)


def notify_config(gateway, paths):
    document = {
        "instances": {item.name: {"address": item.address, "prefix_length": item.prefix_length,
                                  "interface": item.interface} for item in gateway.instances},
        "state_file": paths.state_file,
        "track_file": paths.track_file,
        "vrrp_pid_file": paths.vrrp_pid,
        "garp_repeat": gateway.garp_repeat,
        "conntrackd_config": paths.conntrackd_conf if gateway.conntrack else None,
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def desired_files(gateway, paths, systemd):
    """path -> (content, mode) of every file the gateway needs."""
    files = {
        paths.keepalived_conf: (keepalived.render(gateway, paths), PRIVATE),
        paths.notify_config: (notify_config(gateway, paths), PRIVATE),
        paths.notify_program: (fence_program(), EXECUTABLE),
        paths.track_program: (keepalived.render_track_script(gateway), EXECUTABLE),
        paths.start_program: (boot.render_start(gateway, paths), EXECUTABLE),
        paths.stop_program: (boot.render_stop(paths), EXECUTABLE),
    }
    if gateway.conntrack:
        files[paths.conntrackd_conf] = (conntrackd.render(gateway, paths), PRIVATE)
    if systemd:
        for name, text in boot.render_units(gateway, paths).items():
            files[paths.unit(name)] = (text, 0o644)
    return files


def all_paths(paths):
    units = [paths.unit(name) for name in UNIT_NAMES]
    return [paths.keepalived_conf, paths.notify_config, paths.notify_program, paths.track_program,
            paths.start_program, paths.stop_program, paths.conntrackd_conf] + units


def read_states(host, paths, gateway_instances):
    """Each instance with the state and time of its last transition (recorded by the fence) and whether the
    host has the address configured right now."""
    text = host.read_file(paths.state_file)
    try:
        recorded = json.loads(text).get("instances", {}) if text else {}
    except ValueError:
        recorded = {}
    configured = {info.get("local") for link in host.ip_json("address", "show") for info in link.get("addr_info", [])}
    report = []
    for item in gateway_instances:
        entry = recorded.get(item["name"], {})
        report.append(dict(item, state=entry.get("state", "UNKNOWN"), since=entry.get("since"),
                           held=item["address"] in configured))
    return report


def _configured_instances(host, paths):
    """The instances of the current notify config (for gathered and absent)."""
    text = host.read_file(paths.notify_config)
    try:
        document = json.loads(text) if text else {}
    except ValueError:
        document = {}
    return [{"name": name, "address": entry["address"]}
            for name, entry in sorted(document.get("instances", {}).items())]


def converge(module, host):
    params = module.params
    paths = paths_of(params)
    state = params["state"]
    systemd = host.systemd_running()
    result = {"changed": False, "files": [], "daemons": {}, "commands": []}
    if state == "gathered":
        running = host.process_running(paths.keepalived_pid, "keepalived")
        result["daemons"] = {"keepalived": "running" if running else "stopped",
                             "conntrackd": "running" if host.process_running(paths.conntrackd_pid, "conntrackd")
                             else "stopped"}
        result["instances"] = read_states(host, paths, _configured_instances(host, paths)) if running else [
            dict(item, state="STOPPED", since=None, held=False) for item in _configured_instances(host, paths)]
        return result

    if state == "present":
        requested = [entry.get("address") for entry in params["instances"] or [] if isinstance(entry, dict)]
        on_host = model.host_addresses(host.ip_json("address", "show"), set(requested))
        gateway = model.gateway(params, on_host)
        desired = desired_files(gateway, paths, systemd)
    else:
        gateway, desired = None, {}
    transactions, changed_paths, before, after = engine.file_transactions(host, desired, all_paths(paths))
    keepalived_running = host.process_running(paths.keepalived_pid, "keepalived")
    conntrackd_running = host.process_running(paths.conntrackd_pid, "conntrackd")
    fence_left = fence_tables_left(host)

    actions = []
    if state == "present":
        if gateway.conntrack and not conntrackd_running:
            actions.append(("conntrackd", "start"))
        elif gateway.conntrack and paths.conntrackd_conf in changed_paths:
            actions.append(("conntrackd", "restart"))
        elif not gateway.conntrack and conntrackd_running:
            actions.append(("conntrackd", "stop"))
        if not keepalived_running:
            actions.append(("keepalived", "start"))
        elif {paths.keepalived_conf, paths.notify_config} & set(changed_paths):
            actions.append(("keepalived", "reload"))
    else:
        if keepalived_running:
            actions.append(("keepalived", "stop"))
        if conntrackd_running:
            actions.append(("conntrackd", "stop"))
    result["files"] = changed_paths
    result["commands"] = ([engine.describe(item) for item in transactions]
                          + [f"{verb} {name}" for name, verb in actions])
    result["changed"] = bool(transactions or actions or (state == "absent" and fence_left))
    if module._diff:
        result["diff"] = {"before": {"files": before}, "after": {"files": after}}
    if not module.check_mode:
        stop_first = state == "absent"
        if stop_first:
            _daemon_actions(host, paths, actions, systemd)
            # The fence of a keepalived that just stopped loads its tables as it ends: look again.
            if fence_left or fence_tables_left(host):
                host.nft_apply(fence.unfence_script() + fence.remove_quiet_script())
        engine.apply(host, transactions)
        if not stop_first:
            if systemd and transactions:
                host.run(["systemctl", "daemon-reload"])
            _daemon_actions(host, paths, actions, systemd)
        result["daemons"] = dict(actions)
    if state == "present":
        configured = [{"name": item.name, "address": item.address, "vrid": item.vrid, "priority": item.priority}
                      for item in gateway.instances]
        result["instances"] = read_states(host, paths, configured)
    else:
        result["instances"] = []
    return result


def fence_tables_left(host):
    """The fence's nft tables present on the host (family, name)."""
    return [(family, table) for family, table in (("arp", fence.FENCE_TABLE), ("netdev", fence.QUIET_TABLE))
            if host.nft_json("table", family, table) is not None]


def _daemon_actions(host, paths, actions, systemd):
    for name, verb in actions:
        unit = f"netkit-egress-{name}.service"
        pid_file = paths.keepalived_pid if name == "keepalived" else paths.conntrackd_pid
        if systemd:
            command = {"start": ["enable", "--now"], "restart": ["restart"], "reload": ["reload"],
                       "stop": ["disable", "--now"]}[verb]
            host.run(["systemctl"] + command + [unit])
        elif verb == "reload":
            host.signal_pid_file(pid_file, name, "HUP")
        elif verb in ("stop", "restart"):
            host.stop_pid_file(pid_file, name)
            if verb == "restart":
                host.run([paths.start_program])
        else:
            host.run([paths.start_program])
