"""The egress NAT lab: a small "cluster" of namespaces and the inventory that describes it.

    ext (203.0.113.10, whoami)   ext2 (198.51.100.10, whoami; outside the policy's destinations)
     |  203.0.113.0/24             |  198.51.100.0/24
    rt (192.168.1.254 / 203.0.113.1): plain router, no NAT, no route to the pod ranges
     |  node subnet 192.168.1.0/24 (bridge br0 in namespace "sw")
    +-- node1 192.168.1.1  -- bridge cbr0 10.10.1.1/24 -- pods p1a 10.10.1.10, p1b 10.10.1.11
    +-- node2 192.168.1.2  -- bridge cbr0 10.10.2.1/24 -- pods p2a 10.10.2.10, p2b 10.10.2.11
    +-- gw1   192.168.1.11
    +-- gw2   192.168.1.12

Nodes masquerade their pods' traffic to their own address with an ordinary iptables rule, as real
cluster nodes do; that is the starting point of the guide.
"""

from __future__ import annotations

import os
import re

import yaml

NODE_SUBNET = "192.168.1.0/24"
SERVER = "203.0.113.10"
OTHER_SERVER = "198.51.100.10"  # outside every policy's destinations
NODES = {"node1": "192.168.1.1", "node2": "192.168.1.2"}
GATEWAYS = {"gw1": "192.168.1.11", "gw2": "192.168.1.12"}
PODS = {
    # pod: (node, address, namespace, labels)
    "p1a": ("node1", "10.10.1.10", "alice-ns", {"role": "frontend"}),
    "p1b": ("node1", "10.10.1.11", "alice-ns", {"role": "backend"}),
    "p2a": ("node2", "10.10.2.10", "paul-ns", {"role": "frontend"}),
    "p2b": ("node2", "10.10.2.11", "bob-ns", {"role": "frontend"}),
}
POD_GATEWAY = {"node1": "10.10.1.1", "node2": "10.10.2.1"}
NAMESPACES = [
    {"name": "alice-ns", "labels": {"user": "alice"}},
    {"name": "paul-ns", "labels": {"user": "paul"}},
    {"name": "bob-ns", "labels": {"user": "bob"}},
]

# The guide's manifests, with its typos corrected (a missing colon after `spec`, dashes as bullets),
# the destination moved to the lab's documentation range, and loaded verbatim by the inventory.
GUIDE_MANIFESTS = """\
kind: NetworkGatewayGroup
apiVersion: networking.gke.io/v1
metadata:
  namespace: kube-system
  name: default
spec:
  floatingIPs:
  - 192.168.1.100
  - 192.168.1.101
  - 192.168.1.102
---
kind: EgressNATPolicy
apiVersion: networking.gke.io/v1
metadata:
  name: alice-paul
spec:
  sources:
  - namespaceSelector:
      matchLabels:
        user: alice
    podSelector:
      matchLabels:
        role: frontend
  - namespaceSelector:
      matchLabels:
        user: paul
    podSelector:
      matchLabels:
        role: frontend
  action: SNAT
  destinations:
  - cidr: 203.0.113.0/24
  gatewayRef:
    name: default
    namespace: kube-system
"""


def build(lab):
    """Create the cluster topology in ``lab`` (a netlab.Lab)."""
    for host in ("sw", "ext", "ext2"):
        lab.add_host(host)
    lab.add_host("rt", forwarding=True)
    for host in list(NODES) + list(GATEWAYS):
        lab.add_host(host, forwarding=host in NODES)
    for pod in PODS:
        lab.add_host(pod)

    lab.bridge("sw", "br0")
    lab.attach("sw", "br0", "rt", "eth0")
    lab.addr("rt", "eth0", "192.168.1.254/24")
    lab.link("rt", "eth1", "ext", "eth0")
    lab.addr("rt", "eth1", "203.0.113.1/24")
    lab.addr("ext", "eth0", f"{SERVER}/24")
    lab.route("ext", "default", via="203.0.113.1")
    lab.link("rt", "eth2", "ext2", "eth0")
    lab.addr("rt", "eth2", "198.51.100.1/24")
    lab.addr("ext2", "eth0", f"{OTHER_SERVER}/24")
    lab.route("ext2", "default", via="198.51.100.1")

    for host, address in {**NODES, **GATEWAYS}.items():
        lab.attach("sw", "br0", host, "eth0")
        lab.addr(host, "eth0", f"{address}/24")
        lab.route(host, "default", via="192.168.1.254")

    for node, pod_gateway in POD_GATEWAY.items():
        lab.bridge(node, "cbr0")
        lab.addr(node, "cbr0", f"{pod_gateway}/24")
        # The ordinary node masquerade the guide starts from (a foreign rule: we must not touch it).
        lab.sh(node, "iptables -t nat -A POSTROUTING -s 10.10.0.0/16 ! -d 10.10.0.0/16 -o eth0 -j MASQUERADE")
    for pod, (node, address, _namespace, _labels) in PODS.items():
        lab.attach(node, "cbr0", pod, "eth0")
        lab.addr(pod, "eth0", f"{address}/24")
        lab.route(pod, "default", via=POD_GATEWAY[node])
    lab.start_whoami("ext")
    lab.start_whoami("ext2")


def inventory(lab, manifests=GUIDE_MANIFESTS, extra_vars=None):
    """The inventory a user would write for this cluster (hosts are namespaces)."""
    workloads = {node: [] for node in NODES}
    for pod, (node, address, namespace, labels) in PODS.items():
        workloads[node].append({"name": pod, "namespace": namespace, "labels": labels, "address": address})
    documents = [doc for doc in yaml.safe_load_all(manifests) if doc]
    all_vars = {
        "ansible_connection": "netkit.egress.netns",
        "ansible_python_interpreter": "/usr/bin/python3",
        "network_gateway_groups": [d for d in documents if d.get("kind") == "NetworkGatewayGroup"],
        "egress_nat_policies": [d for d in documents if d.get("kind") == "EgressNATPolicy"],
        "egress_namespaces": NAMESPACES,
    }
    all_vars.update(extra_vars or {})
    return {
        "all": {
            "vars": all_vars,
            "children": {
                "egress_nat_gateways": {"hosts": {gw: {"ansible_host": lab.ns(gw)} for gw in GATEWAYS}},
                "egress_nat_nodes": {"hosts": {
                    node: {"ansible_host": lab.ns(node), "egress_workloads": workloads[node]} for node in NODES}},
            },
        }
    }


def write_inventory(lab, path, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        yaml.safe_dump(inventory(lab, **kwargs), handle, sort_keys=False)
    return path


def source_addresses(lab, server=SERVER):
    """pod -> the source address the server saw (None when the connection failed)."""
    return {pod: lab.whoami(pod, server) for pod in PODS}


def cluster_hosts():
    return list(NODES) + list(GATEWAYS)


# ---- reboot without Ansible ------------------------------------------------------------------
# What boot runs on a host without systemd, in the order the units start: the NAT datapath, the floating IPs
# (failover none), keepalived (failover vrrp; its track script wants the datapath first).
BOOT_PROGRAMS = ("/etc/netkit-egress/nat_policy.start", "/etc/netkit-egress/floating_ip.start",
                 "/etc/netkit-egress/vrrp/start")
# A reboot leaves only the kernel's own rules (local, main, default).
DEFAULT_RULE_PRIORITIES = (0, 32766, 32767)
ROUTE_PROTOCOL = 201


def private_path(lab, host, path):
    """Where the controller keeps ``path`` (below /etc/netkit-egress or /run) of namespace host ``host``: in
    that host's own copy of the directory, as the netns connection mounts it."""
    from ansible_collections.netkit.egress.plugins.connection.netns import private_source

    for directory in ("/etc/netkit-egress", "/run"):
        if path == directory or path.startswith(directory + "/"):
            return private_source(lab.ns(host), directory) + path[len(directory):]
    raise ValueError(f"{path} is not in a private directory")


def reboot(lab, host):
    """Take from ``host`` what a reboot takes: every process, our nft tables, ip rules and routes and floating
    addresses, conntrack entries, its /run, and the sysctls we changed (back to the values they had before
    us). Its files in /etc stay, as on disk."""
    import json
    import shutil
    import signal
    import subprocess

    for pid in subprocess.run(["ip", "netns", "pids", lab.ns(host)], capture_output=True, text=True,
                              check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    for line in lab.sh(host, "nft list tables").stdout.splitlines():
        family, name = line.split()[1:3]
        if name.startswith("netkit_"):
            lab.sh(host, f"nft delete table {family} {name}")
    for flag in ("-4", "-6"):
        for rule in json.loads(lab.sh(host, f"ip -j {flag} rule show").stdout or "[]"):
            if rule.get("priority") not in DEFAULT_RULE_PRIORITIES:
                lab.sh(host, f"ip {flag} rule del priority {rule['priority']}")
        lab.sh(host, f"ip {flag} route flush table all proto {ROUTE_PROTOCOL}")
    for link in json.loads(lab.sh(host, "ip -j addr show").stdout):
        for info in link.get("addr_info", []):
            if info.get("label", "").endswith(":nk"):
                lab.sh(host, f"ip addr del {info['local']}/{info['prefixlen']} dev {link['ifname']}")
    lab.sh(host, "conntrack -F", check=False)
    record = private_path(lab, host, "/etc/netkit-egress/nat_policy.json")
    if os.path.exists(record):
        with open(record) as handle:
            for name, value in json.load(handle).get("sysctl_originals", {}).items():
                lab.sysctl(host, name, value)
    run_dir = private_path(lab, host, "/run")
    for name in os.listdir(run_dir) if os.path.isdir(run_dir) else []:
        path = os.path.join(run_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def without_counters(text):
    """A snapshot part without nft packet counters (traffic meanwhile changes them, not a run or a boot)."""
    return re.sub(r"counter packets \d+ bytes \d+", "counter", text)


def boot(lab, host):
    """Run what boot runs on ``host`` (its start programs that exist, in order, with the host's private
    directories); returns the programs it ran."""
    ran = []
    for program in BOOT_PROGRAMS:
        if os.path.exists(private_path(lab, host, program)):
            lab.host_exec(host, [program], timeout=30)
            ran.append(program)
    return ran
