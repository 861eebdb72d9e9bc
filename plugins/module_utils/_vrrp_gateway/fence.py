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
  and only then lifts the fence, letting the normal election hand the IPs back;
* keeps a new master quiet until the old one is gone: keepalived adds the address and sends gratuitous ARP
  the moment it becomes master, while the old master (preempted, drained, or bouncing on a reload) still
  has the address for a few milliseconds and answers too. So every floating IP this node does not hold is
  *quiet* (an nft ``netdev`` egress chain of its own drops every ARP frame this host sends for it, except
  answers to address probes). On MASTER the fence probes the address (an RFC 5227 probe, sender 0.0.0.0) until
  nobody else has answered or claimed it for ``CLAIM_WINDOW``, and only then lifts the quiet and sends the
  gratuitous ARP itself. Meanwhile the old holder answers alone and forwards what neighbours still send it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

FENCE_TABLE = "netkit_vrrp_fence"
QUIET_TABLE = "netkit_vrrp_quiet"
POLL_SECONDS = 0.02
# A host that has the address answers a probe within a millisecond (the kernel does, whatever its user
# space is doing); three probes without an answer or a claim from another MAC mean nobody else holds it.
CLAIM_WINDOW = 0.03
PROBE_INTERVAL = 0.01
# A reload restarts this program, and a transition can reach the old one just before it ends: now and then
# the addresses the host really has are compared with what is quiet.
RECONCILE_SECONDS = 0.5
ETH_P_ARP = 0x0806


# Not a state: a MASTER that heard an advert of lower priority (another node briefly master too) stays MASTER.
NOT_STATES = ("MASTER_RX_LOWER_PRI",)


def parse_notify_line(line):
    """(kind, name, state, priority) of a notify FIFO line, or None for lines of no interest."""
    words = line.strip().split()
    if len(words) < 3 or words[0] not in ("INSTANCE", "GROUP") or words[2] in NOT_STATES:
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


def quiet_script(addresses, interface):
    """nft input that makes this host send no ARP for ``addresses`` on ``interface`` (no reply, no gratuitous
    ARP, no request with that sender) except answers to address probes (target 0.0.0.0), so that two new
    masters see each other. A netdev egress chain: keepalived sends its gratuitous ARP through a packet
    socket, which the arp family's output hook never sees. Replaces the whole table in one transaction."""
    lines = [f"table netdev {QUIET_TABLE} {{}}", f"delete table netdev {QUIET_TABLE}", f"table netdev {QUIET_TABLE} {{",
             "  set quiet { type ipv4_addr; }",
             f"  chain egress {{ type filter hook egress device \"{interface}\" priority -300; policy accept; "
             "ether type arp arp saddr ip @quiet arp daddr ip != 0.0.0.0 drop; }",
             "}"]
    if addresses:
        lines.append(f"add element netdev {QUIET_TABLE} quiet {{ {', '.join(sorted(addresses))} }}")
    return "\n".join(lines) + "\n"


def remove_quiet_script():
    return f"table netdev {QUIET_TABLE} {{}}\ndelete table netdev {QUIET_TABLE}\n"


def arp_frame(mac, operation, sender_mac, sender_ip, target_mac, target_ip, destination=b"\xff" * 6):
    return (destination + mac + struct.pack("!H", ETH_P_ARP)
            + struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, operation, sender_mac, socket.inet_aton(sender_ip),
                          target_mac, socket.inet_aton(target_ip))).ljust(60, b"\x00")


def probe_frame(mac, address):
    """RFC 5227 probe: who has ``address``, asked from 0.0.0.0 (no neighbour learns anything from it)."""
    return arp_frame(mac, 1, mac, "0.0.0.0", b"\x00" * 6, address)


def announce_frame(mac, address):
    """Gratuitous ARP as keepalived sends it (a broadcast request for the address from the address)."""
    return arp_frame(mac, 1, mac, address, b"\xff" * 6, address)


def claimed_by_others(frame, own_mac):
    """The sender IP of an ARP frame from another MAC (a reply, a gratuitous ARP or a request using the
    address as sender), or None."""
    if len(frame) < 42 or frame[12:14] != struct.pack("!H", ETH_P_ARP):
        return None
    sender_mac, sender_ip = frame[22:28], frame[28:32]
    if sender_mac == own_mac or sender_ip == b"\x00\x00\x00\x00":
        return None
    return socket.inet_ntoa(sender_ip)


class ArpSocket:
    """Raw ARP on the instances' interface: probes, gratuitous ARP, and every ARP frame seen there."""

    def __init__(self, interface):
        with open(f"/sys/class/net/{interface}/address") as handle:
            self.mac = bytes(int(part, 16) for part in handle.read().strip().split(":"))
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        self.sock.bind((interface, ETH_P_ARP))
        self.sock.setblocking(False)

    def send(self, frame):
        try:
            self.sock.send(frame)
        except OSError:
            pass

    def claimed(self):
        """Addresses other MACs claimed since the last call."""
        found = set()
        while True:
            try:
                frame = self.sock.recv(2048)
            except OSError:  # nothing more to read (BlockingIOError) or the interface went away
                return found
            address = claimed_by_others(frame, self.mac)
            if address:
                found.add(address)


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
    def __init__(self, config, run=subprocess.run, clock=time.time, monotonic=time.monotonic, arp=None):
        self.config = config
        self.instances = config["instances"]
        self.run = run
        self.clock = clock
        self.monotonic = monotonic
        self.arp = arp
        self.states = {}
        self.fenced = False
        self.stopped_fence = False
        self.quiet = set()
        interfaces = sorted({item["interface"] for item in self.instances.values()})
        self.interface = interfaces[0] if interfaces else None
        self.claims = {}  # instance name -> {"since": start of the current quiet window, "probed": last probe}
        self.reconciled = 0.0

    # ---- host actions ---------------------------------------------------------------------
    def _run(self, argv, data=None):
        try:
            self.run(argv, input=data, text=True, capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            pass

    def fence(self):
        addresses = [item["address"] for item in self.instances.values()]
        # Quiet as well: once the fence is lifted, the address is claimed again only after a probe.
        self.quiet = set(addresses)
        self.claims = {}
        self._run(["nft", "-f", "-"], fence_script(addresses))
        for item in self.instances.values():
            self._run(["ip", "address", "del", f"{item['address']}/{item['prefix_length']}",
                       "dev", item["interface"]])
        # Apart and last: the quiet chain needs the interface, the fence must not wait for it or depend on it.
        self._run(["nft", "-f", "-"], self._quiet_input())
        self.fenced = True

    def unfence(self):
        self._run(["nft", "-f", "-"], unfence_script())
        self.fenced = False

    def start(self, held):
        """At start (keepalived started or reloaded): quiet every floating IP, lift what an earlier, dead
        keepalived left fenced, and claim again the addresses this host still holds (a reload)."""
        self.quiet = {item["address"] for item in self.instances.values()}
        self._run(["nft", "-f", "-"], self._quiet_input())
        self._run(["nft", "-f", "-"], unfence_script())
        self.fenced = False
        for name, item in self.instances.items():
            if item["address"] in held:
                self.start_claim(name)

    # ---- claims -------------------------------------------------------------------------------
    def set_quiet(self, address, quiet):
        if (address in self.quiet) == quiet:
            return
        if quiet:
            self.quiet.add(address)
        else:
            self.quiet.discard(address)
        self._run(["nft", "-f", "-"], self._quiet_input())

    def _quiet_input(self):
        return quiet_script(self.quiet, self.interface) if self.interface else remove_quiet_script()

    def reconcile(self, held):
        """Claim the held addresses that are quiet (a MASTER this program did not hear), quiet the others."""
        for name, item in sorted(self.instances.items()):
            address = item["address"]
            if address in held:
                if address in self.quiet and name not in self.claims and not self.fenced:
                    self.start_claim(name)
            elif address not in self.quiet and name not in self.claims:
                self.set_quiet(address, True)

    def start_claim(self, name):
        now = self.monotonic()
        self.claims[name] = {"started": now, "since": now, "probed": None}
        self.tick()

    def contested(self, addresses):
        """Another MAC answered or claimed these addresses: each claim of them starts its window again."""
        now = self.monotonic()
        for name, claim in self.claims.items():
            if self.instances[name]["address"] in addresses:
                claim["since"] = now

    def tick(self):
        """Probe the claimed addresses; lift the quiet and announce those nobody else claimed for a whole
        window."""
        if self.fenced:
            return
        now = self.monotonic()
        for name in sorted(self.claims):
            claim, address = self.claims[name], self.instances[name]["address"]
            if now - claim["since"] >= CLAIM_WINDOW and claim["probed"] is not None:
                del self.claims[name]
                self.set_quiet(address, False)
                self.note(name, claimed_after=round(now - claim["started"], 3))
                if self.arp is not None:
                    for _repeat in range(int(self.config.get("garp_repeat") or 5)):
                        self.arp.send(announce_frame(self.arp.mac, address))
            elif claim["probed"] is None or now - claim["probed"] >= _probe_interval(now - claim["started"]):
                claim["probed"] = now
                if self.arp is not None:
                    self.arp.send(probe_frame(self.arp.mac, address))

    def next_wakeup(self):
        """Seconds until the next probe or claim decision (POLL_SECONDS without claims)."""
        if not self.claims:
            return POLL_SECONDS
        now = self.monotonic()
        soonest = min(min(claim["since"] + CLAIM_WINDOW,
                          (claim["probed"] or now) + _probe_interval(now - claim["started"]))
                      for claim in self.claims.values())
        return max(0.001, min(POLL_SECONDS, soonest - now))

    def write_track(self, value):
        path = self.config.get("track_file")
        if path:
            _write_atomic(path, f"{value}\n")

    # ---- state ----------------------------------------------------------------------------
    def record(self, name, state, priority):
        self.states[name] = {"state": state, "priority": priority, "since": round(self.clock(), 3)}
        document = {"pid": os.getpid(), "instances": self.states}
        _write_atomic(self.config["state_file"], json.dumps(document, indent=2, sort_keys=True) + "\n")

    def note(self, name, **facts):
        """Add facts (how long a claim took) to an instance's recorded state."""
        if name in self.states:
            self.states[name].update(facts)
            document = {"pid": os.getpid(), "instances": self.states}
            _write_atomic(self.config["state_file"], json.dumps(document, indent=2, sort_keys=True) + "\n")

    def on_line(self, line):
        parsed = parse_notify_line(line)
        if parsed is None or parsed[0] != "INSTANCE" or parsed[1] not in self.instances:
            return
        _kind, name, state, priority = parsed
        previous = self.states.get(name, {}).get("state")
        self.record(name, state, priority)
        address = self.instances[name]["address"]
        if state == "MASTER":
            if address in self.quiet and name not in self.claims and not self.fenced:
                self.start_claim(name)
        else:
            self.claims.pop(name, None)
            self.set_quiet(address, True)
        conntrack = self.config.get("conntrackd_config")
        if conntrack and state != previous:
            for argv in conntrack_hook_argvs(state, conntrack):
                self._run(argv)

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


def _probe_interval(claiming_for):
    # Someone else keeps the address (a hand-over in progress, or a real address conflict): probe less often.
    return PROBE_INTERVAL if claiming_for < 1 else 0.2


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


def _held_addresses(config, run=subprocess.run):
    """The floating IPs configured on this host right now."""
    try:
        out = run(["ip", "-j", "-4", "address", "show"], text=True, capture_output=True, timeout=10,
                  check=False).stdout
        links = json.loads(out or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return set()
    wanted = {item["address"] for item in config["instances"].values()}
    return {info.get("local") for link in links for info in link.get("addr_info", [])} & wanted


def _arp_socket(config):
    interfaces = sorted({item["interface"] for item in config["instances"].values()})
    if len(interfaces) != 1:
        return None
    try:
        return ArpSocket(interfaces[0])
    except OSError:
        # Without a raw socket a claim still waits out its window (without probes or announcements; the
        # gratuitous ARP keepalived repeats later moves the neighbours).
        return None


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
    arp = _arp_socket(config)
    fence = Fence(config, arp=arp)
    # A reload restarts this program without new transitions: keep the last ones (a restart reports all anew).
    fence.states = _previous_states(config)
    # keepalived starts this in BACKUP/INIT: whatever an earlier, dead keepalived left fenced is ours to lift.
    fence.start(_held_addresses(config))
    fence.write_track(0)

    def terminate(_signum, _frame):
        fence.fence()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    fifo = os.open(argv[1], os.O_RDONLY | os.O_NONBLOCK)
    pending = bytearray()
    opened_at = time.monotonic()
    while True:
        try:
            if step(fence, config, fifo, arp, pending, opened_at) is not None:
                return 0
        except (OSError, ValueError, KeyError, TypeError) as error:
            # One bad event must not end the fence (its addresses would stay quiet for good).
            sys.stderr.write(f"netkit-vrrp-notify: {error!r}\n")
            time.sleep(POLL_SECONDS)


def step(fence, config, fifo, arp, pending, opened_at):
    """One turn of the loop: ARP seen, notify lines, claims, keepalived stopped or running again. Returns 0
    when keepalived is gone. ``pending`` (a bytearray) keeps an incomplete notify line between turns."""
    watched = [fifo] + ([arp.sock] if arp is not None else [])
    ready, _w, _x = select.select(watched, [], [], fence.next_wakeup())
    if arp is not None and arp.sock in ready:
        fence.contested(arp.claimed())
    if fifo in ready:
        chunk = os.read(fifo, 65536)
        if not chunk and time.monotonic() - opened_at > 1:
            # Every writer is gone: keepalived died without signalling us.
            fence.fence()
            return 0
        pending += chunk
        while b"\n" in pending:
            index = pending.index(b"\n")
            line = bytes(pending[:index])
            del pending[:index + 1]
            fence.on_line(line.decode("utf-8", "replace"))
        if not chunk:
            time.sleep(POLL_SECONDS)
    fence.tick()
    if time.monotonic() - fence.reconciled >= RECONCILE_SECONDS:
        fence.reconciled = time.monotonic()
        fence.reconcile(_held_addresses(config))
    pid = _vrrp_pid(config)
    if process_stopped(pid):
        if not fence.stopped_fence:
            fence.on_keepalived_stopped()
    elif fence.stopped_fence and fence.may_lift_stop_fence():
        fence.lift_stop_fence()
    return None


if __name__ == "__main__":
    raise SystemExit(main())
