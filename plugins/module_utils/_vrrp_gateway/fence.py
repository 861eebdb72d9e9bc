# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The VRRP notify handler and fence, run by keepalived itself (``vrrp_notify_fifo_script``).

The module installs this file's source as an executable on the gateway (standard library only). keepalived
starts it as a child of its VRRP process, with the notify FIFO as argument, and sends it SIGTERM when that
process dies (also after SIGKILL). It:

* records every state change (``INSTANCE "name" MASTER 200``) with its time in the state file, which
  ``vrrp_gateway state=gathered`` and ``status.yml`` report;
* runs the conntrackd hooks on state changes (MASTER: commit the external cache, flush, resync, bulk send;
  BACKUP/FAULT: shorten timers and ask the master for a resync), when conntrack sync is configured;
* fences: keepalived keeps its addresses when it dies or is stopped, and the old holder would go on
  answering ARP beside the new one. On SIGTERM or end of the FIFO (keepalived died) and while keepalived's
  VRRP process is stopped (SIGSTOP: state ``T`` in /proc), it drops ARP for every floating IP (an nft
  ``arp`` table of its own) and removes the addresses. After a stop it also writes 1 into the track file,
  so that keepalived, once it runs again, goes to FAULT (never answering as a master it no longer is),
  and only then lifts the fence, letting the normal election hand the IPs back.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

FENCE_TABLE = "netkit_vrrp_fence"
POLL_SECONDS = 0.02


def parse_notify_line(line):
    """(kind, name, state, priority) of a notify FIFO line, or None for lines of no interest."""
    words = line.strip().split()
    if len(words) < 3 or words[0] not in ("INSTANCE", "GROUP"):
        return None
    name = words[1].strip('"')
    priority = int(words[3]) if len(words) > 3 and words[3].isdigit() else None
    return words[0], name, words[2], priority


def fence_script(addresses):
    """nft input that drops every ARP frame for the floating IPs, in and out (replaces any older fence)."""
    lines = [f"table arp {FENCE_TABLE} {{}}", f"delete table arp {FENCE_TABLE}", f"table arp {FENCE_TABLE} {{"]
    lines.append("  chain input { type filter hook input priority -300; policy accept; }")
    lines.append("  chain output { type filter hook output priority -300; policy accept; }")
    lines.append("}")
    for address in addresses:
        lines.append(f"add rule arp {FENCE_TABLE} input arp daddr ip {address} drop")
        lines.append(f"add rule arp {FENCE_TABLE} input arp saddr ip {address} drop")
        lines.append(f"add rule arp {FENCE_TABLE} output arp saddr ip {address} drop")
    return "\n".join(lines) + "\n"


def unfence_script():
    return f"table arp {FENCE_TABLE} {{}}\ndelete table arp {FENCE_TABLE}\n"


def conntrack_hook_argvs(state, config_path):
    """The conntrackd commands of a state change (the primary-backup script conntrackd ships)."""
    base = ["conntrackd", "-C", config_path]
    if state == "MASTER":
        return [base + ["-c"], base + ["-f"], base + ["-R"], base + ["-B"]]
    if state == "BACKUP":
        return [base + ["-t"], base + ["-n"]]
    if state == "FAULT":
        return [base + ["-t"]]
    return []


def process_stopped(pid):
    """Whether process ``pid`` is stopped (SIGSTOP) or traced, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("T", "t")


class Fence:
    def __init__(self, config, run=subprocess.run, clock=time.time):
        self.config = config
        self.instances = config["instances"]
        self.run = run
        self.clock = clock
        self.states = {}
        self.fenced = False
        self.stopped_fence = False

    # ---- host actions ---------------------------------------------------------------------
    def _quiet(self, argv, data=None):
        try:
            self.run(argv, input=data, text=True, capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            pass

    def fence(self):
        addresses = [item["address"] for item in self.instances.values()]
        self._quiet(["nft", "-f", "-"], fence_script(addresses))
        for item in self.instances.values():
            self._quiet(["ip", "address", "del", f"{item['address']}/{item['prefix_length']}",
                         "dev", item["interface"]])
        self.fenced = True

    def unfence(self):
        self._quiet(["nft", "-f", "-"], unfence_script())
        self.fenced = False

    def write_track(self, value):
        path = self.config.get("track_file")
        if path:
            _write_atomic(path, f"{value}\n")

    # ---- state ----------------------------------------------------------------------------
    def record(self, name, state, priority):
        self.states[name] = {"state": state, "priority": priority, "since": round(self.clock(), 3)}
        document = {"pid": os.getpid(), "instances": self.states}
        _write_atomic(self.config["state_file"], json.dumps(document, indent=2, sort_keys=True) + "\n")

    def on_line(self, line):
        parsed = parse_notify_line(line)
        if parsed is None or parsed[0] != "INSTANCE" or parsed[1] not in self.instances:
            return
        _kind, name, state, priority = parsed
        previous = self.states.get(name, {}).get("state")
        self.record(name, state, priority)
        conntrack = self.config.get("conntrackd_config")
        if conntrack and state != previous:
            for argv in conntrack_hook_argvs(state, conntrack):
                self._quiet(argv)

    def on_keepalived_stopped(self):
        self.fence()
        self.stopped_fence = True
        self.write_track(1)
        for name in self.states:
            self.record(name, "FENCED", self.states[name].get("priority"))

    def may_lift_stop_fence(self):
        """After a stop: keepalived runs again and has left MASTER for every instance (the track file put it
        in FAULT), so lifting the fence cannot make it answer beside the new holder."""
        return all(entry["state"] in ("FAULT", "BACKUP") for entry in self.states.values())

    def lift_stop_fence(self):
        self.unfence()
        self.stopped_fence = False
        self.write_track(0)


def _write_atomic(path, text):
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp_path = f"{path}.{os.getpid()}.tmp"
    with open(tmp_path, "w") as handle:
        handle.write(text)
    os.replace(tmp_path, path)


def _previous_states(config):
    try:
        with open(config["state_file"]) as handle:
            recorded = json.load(handle).get("instances", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {name: entry for name, entry in recorded.items() if name in config["instances"] and isinstance(entry, dict)}


def _vrrp_pid(config):
    try:
        with open(config["vrrp_pid_file"]) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError, KeyError):
        return os.getppid()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        sys.stderr.write("usage: netkit-vrrp-notify CONFIG.json FIFO\n")
        return 2
    with open(argv[0]) as handle:
        config = json.load(handle)
    fence = Fence(config)
    # A reload restarts this program without new transitions: keep the last ones (a restart reports all anew).
    fence.states = _previous_states(config)
    # keepalived starts this in BACKUP/INIT: whatever an earlier, dead keepalived left fenced is ours to lift.
    fence.unfence()
    fence.write_track(0)

    def terminate(_signum, _frame):
        fence.fence()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    fifo = os.open(argv[1], os.O_RDONLY | os.O_NONBLOCK)
    pending = b""
    opened_at = time.monotonic()
    while True:
        ready, _w, _x = select.select([fifo], [], [], POLL_SECONDS)
        if ready:
            chunk = os.read(fifo, 65536)
            if not chunk and time.monotonic() - opened_at > 1:
                # Every writer is gone: keepalived died without signalling us.
                fence.fence()
                return 0
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                fence.on_line(line.decode("utf-8", "replace"))
            if not chunk:
                time.sleep(POLL_SECONDS)
        pid = _vrrp_pid(config)
        if process_stopped(pid):
            if not fence.stopped_fence:
                fence.on_keepalived_stopped()
        elif fence.stopped_fence and fence.may_lift_stop_fence():
            fence.lift_stop_fence()


if __name__ == "__main__":
    raise SystemExit(main())
