# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failover of the egress IP in the lab cluster (lab/cluster_lab.py) with gateway_group_failover: vrrp.

Used by tests/integration/test_failover_*.py, bench/failover.py and ``lab.py failover``: converge the cluster
in VRRP mode, send probes from a selected pod to the server every 10 ms, hurt the holder of the egress IP
(SIGKILL or SIGSTOP of keepalived, uplink down, namespace deleted, drain), and measure:

* gap: the longest time without a probe arriving at the server;
* takeover: from the fault to the new holder's first gratuitous ARP;
* lost: probes that never arrived;
* ARP: a capture on the nodes' segment while the router asks for the egress IP every 20 ms; ``arp_conflicts``
  lists every moment where two MACs answered one request or claims flip-flopped between MACs within a second;
* optionally an established TCP connection (bytes both ways) through the failover.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time

import cluster_lab
from netlab import REPO_ROOT, ansible_playbook, task_results

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = os.path.join(HERE, "failover_probe.py")
PLAYBOOK = os.path.join(REPO_ROOT, "playbooks", "egress_nat.yml")
EGRESS_IP = "192.168.1.100"
PROBE_POD = "p1a"
UDP_PORT = 9999
TCP_PORT = 9998
SYNC_SUBNET = "10.255.0.{}/24"
RUN_DIR = "/run/netkit-egress"
CONFIG_DIR = "/etc/netkit-egress/vrrp"
FAULTS = ("sigkill", "sigstop", "uplink-down", "namespace-deleted", "drain")


def build(lab, conntrack_sync=False):
    """The lab cluster; with ``conntrack_sync`` a second segment (bridge in namespace ``sy``) between the
    gateways for the conntrack sync traffic."""
    cluster_lab.build(lab)
    if conntrack_sync:
        lab.add_host("sy")
        lab.bridge("sy", "br1")
        for index, gateway in enumerate(cluster_lab.GATEWAYS, start=1):
            lab.attach("sy", "br1", gateway, "eth1")
            lab.addr(gateway, "eth1", SYNC_SUBNET.format(index))


def vrrp_vars(advert_interval=0.1, conntrack_sync=False, extra=None):
    variables = {"gateway_group_failover": "vrrp", "gateway_group_vrrp_advert_interval": advert_interval}
    if conntrack_sync:
        variables.update({"gateway_group_conntrack_sync": True, "gateway_group_sync_interface": "eth1"})
    variables.update(extra or {})
    return variables


def converge(lab, inventory_path, variables, host_vars=None):
    """Run egress_nat.yml; returns (rc, output). ``host_vars``: host -> extra variables of that host."""
    inventory = cluster_lab.inventory(lab, extra_vars=variables)
    for group in inventory["all"]["children"].values():
        for host, entry in group["hosts"].items():
            entry.update((host_vars or {}).get(host, {}))
    import yaml

    os.makedirs(os.path.dirname(inventory_path), exist_ok=True)
    with open(inventory_path, "w") as handle:
        yaml.safe_dump(inventory, handle, sort_keys=False)
    return ansible_playbook(PLAYBOOK, inventory_path)


def failures(output):
    return [(name, host, result.get("msg")) for name, host, result in task_results(output) if result.get("failed")]


def holders(lab, address=EGRESS_IP):
    found = []
    for gateway in cluster_lab.GATEWAYS:
        if gateway not in lab.hosts:
            continue
        out = lab.sh(gateway, "ip -4 -o addr show", check=False).stdout
        if f" {address}/" in out:
            found.append(gateway)
    return found


def wait_for_holder(lab, address=EGRESS_IP, timeout=15.0, exclude=()):
    """The single gateway holding ``address`` once exactly one (not in ``exclude``) does, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = holders(lab, address)
        if len(found) == 1 and found[0] not in exclude:
            return found[0]
        time.sleep(0.05)
    return None


def vrrp_states(lab, gateway):
    text = lab.host_exec(gateway, ["cat", f"{RUN_DIR}/vrrp_state.json"], check=False).stdout
    try:
        return {name: entry["state"] for name, entry in json.loads(text)["instances"].items()}
    except (ValueError, KeyError):
        return {}


def keepalived_pids(lab, gateway):
    pids = []
    for name in ("keepalived.pid", "keepalived-vrrp.pid"):
        text = lab.host_exec(gateway, ["cat", f"{RUN_DIR}/{name}"], check=False).stdout.strip()
        if text.isdigit():
            pids.append(text)
    return pids


def signal_keepalived(lab, gateway, signal_name):
    pids = keepalived_pids(lab, gateway)
    if pids:
        lab.sh(gateway, f"kill -{signal_name} {' '.join(pids)}", check=False)
    return pids


def boot(lab, gateway):
    """What boot runs on a gateway without systemd: the start program."""
    return lab.host_exec(gateway, [f"{CONFIG_DIR}/start"], check=False, timeout=30)


class Background:
    """A process in a namespace whose stdout goes to a file (a pipe that nobody reads would fill up and block a
    chatty process such as tcpdump), read when it ends (bounded by ``timeout``)."""

    def __init__(self, lab, host, argv, wait_ready=True):
        self.output = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.ns(host)] + list(argv), stdout=self.output,
                                     stderr=subprocess.DEVNULL, text=True)
        if wait_ready:
            deadline = time.monotonic() + 10
            while "\n" not in self._text():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{argv} did not start: {self._text()!r}")
                time.sleep(0.02)

    def _text(self):
        self.output.seek(0)
        return self.output.read()

    def result(self, timeout=30):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        text = self._text()
        self.output.close()
        return text

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.result(timeout=5)


def start_capture(lab, seconds):
    """tcpdump of every ARP frame on the nodes' segment (the switch namespace), bounded in time and count."""
    argv = ["timeout", str(seconds), "tcpdump", "-i", "br0", "-n", "-e", "-tt", "-l", "-c", "20000", "arp"]
    capture = Background(lab, "sw", argv, wait_ready=False)
    time.sleep(0.3)
    return capture


ARP_INTERVAL = 0.02


def start_arp_requests(lab, seconds, address=EGRESS_IP):
    """The router asks for ``address`` every 20 ms (broadcast ARP requests)."""
    return Background(lab, "rt", [sys.executable, PROBE, "arp-ask", "eth0", "192.168.1.254", address,
                                  str(ARP_INTERVAL), str(int(seconds / ARP_INTERVAL))], wait_ready=False)


ARP_LINE = re.compile(r"^(?P<time>\d+\.\d+) (?P<src>[0-9a-f:]{17}) > (?P<dst>[0-9a-f:]{17}), .*?: "
                      r"(?P<op>Request|Reply) (?P<body>.*)$")


WHO_HAS = re.compile(r"who-has (?P<target>\S+)(?: \([^)]*\))? tell (?P<sender>[^,\s]+)")


def arp_claims(capture_text, address=EGRESS_IP):
    """[(time, kind, mac)] from tcpdump lines: ``request`` (someone asks for ``address``), ``reply`` (a MAC
    answers for it) and ``announce`` (a gratuitous request or reply from a MAC claiming it)."""
    events = []
    for line in capture_text.splitlines():
        match = ARP_LINE.match(line.strip())
        if not match:
            continue
        stamp, source, body = float(match["time"]), match["src"], match["body"]
        if match["op"] == "Reply" and body.startswith(f"{address} is-at "):
            mac = body.split(" is-at ")[1].split(",")[0].strip()
            events.append((stamp, "reply", mac))
        elif match["op"] == "Request":
            # "who-has 192.168.1.100 (ff:ff:ff:ff:ff:ff) tell 192.168.1.100": tcpdump shows the target MAC too.
            request = WHO_HAS.match(body)
            if request and request["target"] == address:
                events.append((stamp, "announce" if request["sender"] == address else "request", source))
    return events


def arp_conflicts(events, flip_window=1.0):
    """Moments where two gateways answered for one address: two MACs replying to one request, or the
    claimed MAC going A -> B -> A within ``flip_window`` seconds."""
    conflicts = []
    window_macs, window_start = set(), None
    claims = []
    for stamp, kind, mac in events:
        if kind == "request":
            if len(window_macs) > 1:
                conflicts.append((window_start, "two MACs answered one request", sorted(window_macs)))
            window_macs, window_start = set(), stamp
            continue
        if kind == "reply":
            window_macs.add(mac)
        if not claims or claims[-1][1] != mac:
            claims.append((stamp, mac))
        else:
            claims[-1] = (stamp, mac)
    if len(window_macs) > 1:
        conflicts.append((window_start, "two MACs answered one request", sorted(window_macs)))
    for (time_a, mac_a), (_time_b, mac_b), (time_c, mac_c) in zip(claims, claims[1:], claims[2:]):
        if mac_a == mac_c and mac_a != mac_b and time_c - time_a < flip_window:
            conflicts.append((time_a, "claims flip-flopped", [mac_a, mac_b]))
    return conflicts


def takeover_time(events, old_mac, fault_wall_time):
    """Seconds from the fault to the first claim of another MAC (the new holder's gratuitous ARP or reply)."""
    for stamp, kind, mac in events:
        if kind in ("announce", "reply") and mac != old_mac and stamp >= fault_wall_time:
            return round(stamp - fault_wall_time, 3)
    return None


def probe_gap(arrivals):
    """The longest time between two probes arriving, of UDP arrivals [(seq, time, source)]."""
    if len(arrivals) < 2:
        return None
    times = sorted(arrival[1] for arrival in arrivals)
    return round(max(later - earlier for earlier, later in zip(times, times[1:])), 3)


def run_fault(lab, fault, holder, seconds=4.0, fault_after=1.0, tcp=False, return_after=None, action=None,
              reconverge=None):
    """Probes (and optionally a TCP stream) through one fault of ``holder``; returns a dict of figures.
    ``return_after``: seconds after the fault when the old holder is brought back (boot commands, SIGCONT,
    link up), still inside the measurement. ``action``: a function run instead of the fault (a drain run).
    ``reconverge``: a function run after an uplink came back (a playbook run puts the return routes back)."""
    interval = 0.01
    count = int(seconds / interval)
    python = sys.executable
    receiver = Background(lab, "ext", [python, PROBE, "udp-receive", str(UDP_PORT), str(seconds + 1.5)])
    echo = stream = None
    if tcp:
        echo = Background(lab, "ext", [python, PROBE, "tcp-echo", str(TCP_PORT), str(seconds + 3)])
        stream = Background(lab, PROBE_POD, [python, PROBE, "tcp-stream", cluster_lab.SERVER, str(TCP_PORT),
                                             "0.02", str(seconds)])
    capture = start_capture(lab, seconds + 2)
    arp_requests = start_arp_requests(lab, seconds)
    sender = Background(lab, PROBE_POD, [python, PROBE, "udp-send", cluster_lab.SERVER, str(UDP_PORT),
                                         str(interval), str(count)], wait_ready=False)
    old_mac = lab.sh(holder, "cat /sys/class/net/eth0/address", check=False).stdout.strip()
    time.sleep(fault_after)
    fault_time = time.monotonic()
    fault_wall_time = time.time()
    if action is not None:
        action()
    else:
        inject(lab, fault, holder)
    if return_after is not None:
        time.sleep(return_after)
        restore(lab, fault, holder)
        if fault == "uplink-down" and reconverge is not None:
            reconverge()
    sender.result(timeout=seconds + 10)
    arrivals = json.loads(receiver.result(timeout=seconds + 10).strip().splitlines()[-1])
    capture_text = capture.result(timeout=seconds + 10)
    arp_requests.result(timeout=10)
    figures = {
        "fault": fault,
        "holder": holder,
        "seconds": seconds,
        "sent": count,
        "received": len({arrival[0] for arrival in arrivals}),
        "gap": probe_gap(arrivals),
        "sources": sorted({arrival[2] for arrival in arrivals}),
        "arp_events": len(arp_claims(capture_text)),
        "arp_conflicts": arp_conflicts(arp_claims(capture_text)),
        "takeover": takeover_time(arp_claims(capture_text), old_mac, fault_wall_time),
        "fault_time": fault_time,
    }
    figures["lost"] = figures["sent"] - figures["received"]
    if tcp:
        lines = stream.result(timeout=seconds + 10).strip().splitlines()
        figures["tcp"] = json.loads(lines[-1]) if lines else {"ok": False, "error": "no output"}
        echo.stop()
    return figures


def inject(lab, fault, holder):
    if fault == "sigkill":
        signal_keepalived(lab, holder, "KILL")
    elif fault == "sigstop":
        signal_keepalived(lab, holder, "STOP")
    elif fault == "uplink-down":
        lab.sh(holder, "ip link set eth0 down")
    elif fault == "namespace-deleted":
        # The machine dies at once: its wire is cut before anything in it could react (killing keepalived
        # first would let its VRRP child, signalled by the dying parent, hand over cleanly).
        cut_wire(lab, holder)
        lab.destroy_host(holder)
    else:
        raise ValueError(fault)


def cut_wire(lab, host, ifname="eth0"):
    """Delete the switch port of ``host``'s ``ifname`` (the other end of its veth)."""
    link = json.loads(lab.sh(host, f"ip -j link show {ifname}").stdout)[0]
    for port in json.loads(lab.sh("sw", "ip -j link show").stdout):
        if port.get("ifindex") == link.get("link_index"):
            lab.sh("sw", f"ip link del {port['ifname']}")
            return port["ifname"]
    raise RuntimeError(f"no switch port found for {host} {ifname}")


def restore(lab, fault, holder):
    """Bring the old holder back as its owner would: boot commands after a kill, SIGCONT, link up."""
    if fault == "sigkill":
        boot(lab, holder)
    elif fault == "sigstop":
        signal_keepalived(lab, holder, "CONT")
    elif fault == "uplink-down":
        # The kernel removed every route through the link when it went down; the host's network
        # configuration puts the default route back when it comes up, not the return routes of nat_policy:
        # the track script keeps the node in FAULT until a run (reconverge) restores them.
        lab.sh(holder, "ip link set eth0 up && ip route replace default via 192.168.1.254")
