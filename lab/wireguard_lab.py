"""A WireGuard mesh lab (the lab demo's and the integration tests'): namespaces on one underlay segment, wireguard-go.

Underlay 192.0.2.0/24 (bridge br0 in namespace sw), overlay 10.100.0.0/24 and fd00:100::/64 on wg0. gw is the
egress gateway of the office 192.168.50.0/24 (srv 192.168.50.10, which has no route back to the overlay) and of
192.168.60.0/24 (a second subnet on the same LAN, to remove). The hosts run inside namespaces with the
netkit.egress.netns connection's private directories (their own /etc/wireguard and /run).
"""

from __future__ import annotations

import os
import subprocess
import time

import yaml

from netlab import REPO_ROOT, ansible_playbook

MESH_PLAYBOOK = os.path.join(REPO_ROOT, "playbooks", "wireguard_mesh.yml")
EGRESS_PLAYBOOK = os.path.join(REPO_ROOT, "playbooks", "egress_gateway.yml")
UNDERLAY = {"m1": "192.0.2.11", "m2": "192.0.2.12", "m3": "192.0.2.13", "gw": "192.0.2.1"}
OVERLAY = {"m1": ["10.100.0.11/24", "fd00:100::11/64"], "m2": ["10.100.0.12/24", "fd00:100::12/64"],
           "m3": ["10.100.0.13/24", "fd00:100::13/64"], "gw": ["10.100.0.1/24", "fd00:100::1/64"]}
OFFICE, OFFICE2 = "192.168.50.0/24", "192.168.60.0/24"
SERVER = "192.168.50.10"
WG_PORT = 51820
WHOAMI_PORT = 8080
MEMBERS = ("m1", "m2", "m3", "gw")


def available():
    import shutil

    return all(shutil.which(tool) for tool in ("wireguard-go", "wg", "tcpdump"))


def build(lab, members=MEMBERS, server=True):
    lab.add_host("sw")
    lab.bridge("sw", "br0")
    for host in members:
        lab.add_host(host, forwarding=host == "gw")
        lab.attach("sw", "br0", host, "eth0")
        lab.addr(host, "eth0", f"{UNDERLAY[host]}/24")
    if "gw" in members:
        lab.add_host("srv")
        lab.link("gw", "eth1", "srv", "eth0")
        lab.addr("gw", "eth1", "192.168.50.1/24")
        lab.addr("gw", "eth1", "192.168.60.1/24")
        lab.addr("srv", "eth0", f"{SERVER}/24")
        if server:
            lab.start_whoami("srv", WHOAMI_PORT)


def inventory(lab, members=MEMBERS, gw_ranges=(OFFICE, OFFICE2), member_vars=None, mesh_vars=None):
    netns = {"ansible_connection": "netkit.egress.netns"}
    hosts = {}
    for host in members:
        hosts[host] = {"ansible_host": lab.ns(host), "wireguard_address": OVERLAY[host],
                       "wireguard_endpoint": UNDERLAY[host]}
        hosts[host].update((member_vars or {}).get(host, {}))
    spec = {"all": {"children": {
        "wireguard_mesh": {"vars": dict(netns, **(mesh_vars or {})), "hosts": hosts},
        "egress_gateways": {"vars": netns, "hosts": {}},
        "egress_clients": {"vars": dict(netns, egress_client_network_interface="wg0"), "hosts": {}},
    }}}
    children = spec["all"]["children"]
    if "gw" in members:
        children["egress_gateways"]["hosts"]["gw"] = {"ansible_host": lab.ns("gw"),
                                                      "egress_gateway_network_interface": "wg0",
                                                      "egress_gateway_ranges": list(gw_ranges)}
        for host in members:
            if host != "gw":
                children["egress_clients"]["hosts"][host] = {"ansible_host": lab.ns(host)}
    return spec


def write_inventory(tmp_path, spec, name="inventory.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def playbook(path, inventory_path, check=False, diff=False):
    """(rc, text, recap) of one playbook run with the default callback (the text a user would see)."""
    import lab as mesh_lab  # lab.py imports this file for its demo

    rc, text = ansible_playbook(path, inventory_path, check=check, diff=diff, json_output=False)
    return rc, text, mesh_lab.playbook_recap(text)


def wg_dump(lab, host, interface="wg0"):
    """{peer key: (allowed ips set, endpoint)} of the live interface (the private key column dropped)."""
    proc = lab.host_exec(host, ["wg", "show", interface, "dump"], check=False)
    if proc.returncode != 0:
        return None
    peers = {}
    for line in proc.stdout.splitlines()[1:]:
        columns = line.split("\t")
        peers[columns[0]] = (frozenset() if columns[3] == "(none)" else frozenset(columns[3].split(",")), columns[2])
    return peers


def public_key(lab, host, interface="wg0"):
    return lab.host_exec(host, ["wg", "show", interface, "public-key"]).stdout.strip()


def private_key(lab, host, interface="wg0"):
    return lab.host_exec(host, ["cat", f"/etc/wireguard/{interface}.key"]).stdout.strip()


class Capture:
    """tcpdump on one interface of a namespace, bounded in packet count and time."""

    def __init__(self, lab, host, interface, expression="", count=200, seconds=20):
        argv = ["ip", "netns", "exec", lab.ns(host), "timeout", str(seconds), "tcpdump", "-i", interface, "-n", "-l",
                "-c", str(count), "-q"] + (expression.split() if expression else [])
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 5
        # tcpdump says "listening on" on stderr once its socket is open.
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if "listening on" in line or not line:
                break
        time.sleep(0.2)

    def stop(self):
        time.sleep(0.5)
        self.proc.terminate()
        out, _err = self.proc.communicate(timeout=10)
        return [line for line in out.splitlines() if line.strip()]


def module(inventory_path, host, args, check=False, diff=False):
    """(rc, result) of one ad-hoc run of netkit.egress.wireguard on ``host`` (json callback)."""
    import json

    from netlab import ansible_bin, ansible_env

    argv = [ansible_bin("ansible"), "-i", inventory_path, host, "-m", "netkit.egress.wireguard", "-a", json.dumps(args)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=ansible_env())
    # The ad-hoc 'minimal' callback prints "HOST | STATUS => {json}".
    _head, _sep, tail = proc.stdout.partition("=>")
    try:
        result = json.JSONDecoder().raw_decode(tail.strip())[0]
    except ValueError:
        result = {"raw": proc.stdout + proc.stderr}
    return proc.returncode, result, proc.stdout + proc.stderr


def host_state(lab, host):
    """Everything the mesh could change on a host, to prove that nothing changed."""
    state = lab.snapshot(host)
    state["wg"] = wg_dump(lab, host)
    state["etc_wireguard"] = lab.host_exec(host, ["ls", "-la", "--time-style=+", "/etc/wireguard"]).stdout
    return state
