"""netkit.egress.egress_gateway against real namespaces, proven with real TCP (lab.whoami).

Topology: members m1 (network A, 100.64.1.10) and m2 (network B, 100.64.2.10) share a switch with the
gateway's nm0; the gateway reaches office 1 (192.0.2.0/24, 2001:db8:1::/64, server srv1) through up1 and
office 2 (198.51.100.0/24, server srv2) through up2. The servers have no route back to the members unless
a test gives them one.
"""

import json
import os

import pytest
import yaml

import netlab

PORT = 8080
SRV1, SRV1_V6, SRV2 = "192.0.2.10", "2001:db8:1::10", "198.51.100.10"
GW_UP1, GW_UP1_V6, GW_UP2 = "192.0.2.1", "2001:db8:1::1", "198.51.100.1"
M1, M1_V6, M2 = "100.64.1.10", "fd00:64:1::10", "100.64.2.10"
PERSIST_PATHS = {"persist_dir": "/etc/netkit-egress", "sysctl_dir": "/etc/netkit-egress/sysctl.d",
                 "systemd_unit_dir": "/etc/netkit-egress/systemd"}
DOCKER_LIKE = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A DOCKER-USER -s 203.0.113.0/24 -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
"""
FOREIGN_NFT = """table inet foreign {
\tchain input {
\t\ttype filter hook input priority 10; policy accept;
\t\ttcp dport 9999 counter drop
\t}
}
"""


def build(lab, gw_forwarding=False):
    for host in ("sw", "m1", "m2", "srv1", "srv2"):
        lab.add_host(host)
    lab.add_host("gw", forwarding=gw_forwarding)
    lab.bridge("sw", "br0")
    lab.attach("sw", "br0", "gw", "nm0")
    lab.attach("sw", "br0", "m1", "eth0")
    lab.attach("sw", "br0", "m2", "eth0")
    lab.link("gw", "up1", "srv1", "eth0")
    lab.link("gw", "up2", "srv2", "eth0")
    for host, ifname, cidr in (("gw", "nm0", "100.64.1.1/24"), ("gw", "nm0", "100.64.2.1/24"),
                               ("gw", "nm0", "fd00:64:1::1/64"), ("m1", "eth0", M1 + "/24"),
                               ("m1", "eth0", M1_V6 + "/64"), ("m2", "eth0", M2 + "/24"),
                               ("gw", "up1", GW_UP1 + "/24"), ("gw", "up1", GW_UP1_V6 + "/64"),
                               ("srv1", "eth0", SRV1 + "/24"), ("srv1", "eth0", SRV1_V6 + "/64"),
                               ("gw", "up2", GW_UP2 + "/24"), ("srv2", "eth0", SRV2 + "/24")):
        lab.addr(host, ifname, cidr)
    lab.route("m1", "default", via="100.64.1.1")
    lab.route("m1", "::/0", via="fd00:64:1::1")
    lab.route("m2", "default", via="100.64.2.1")
    for server in ("srv1", "srv2"):
        lab.start_whoami(server, PORT)


def give_servers_return_routes(lab):
    lab.route("srv1", "100.64.0.0/16", via=GW_UP1)
    lab.route("srv1", "fd00:64::/32", via=GW_UP1_V6)
    lab.route("srv2", "100.64.0.0/16", via=GW_UP2)


def inventory(lab, tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "netkit.egress.netns", "ansible_python_interpreter": "/usr/bin/python3"},
        "hosts": {"gw": {"ansible_host": lab.ns("gw")}}}}))
    return str(path)


def playbook(tmp_path, tasks, results_path):
    """One play on gw: each task is (name, module args, extra task keys). The results of all tasks are
    written to ``results_path`` by a last task (read back as JSON, independent of the stdout callback)."""
    body = []
    for index, (_task_name, args, extra) in enumerate(tasks):
        task = {"name": f"t{index}", "netkit.egress.egress_gateway": args, "register": f"r{index}"}
        task.update(extra or {})
        body.append(task)
    collected = "{{ {" + ", ".join(f"'{name}': r{index}" for index, (name, _a, _e) in enumerate(tasks)) + "} | to_json }}"
    body.append({"name": "collect", "ansible.builtin.copy": {"content": collected, "dest": results_path},
                 "check_mode": False, "diff": False})
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump([{"hosts": "gw", "gather_facts": False, "tasks": body}]))
    return str(path)


def run_tasks(lab, tmp_path, tasks, check=False, diff=False):
    results_path = tmp_path / "results.json"
    if results_path.exists():
        results_path.unlink()
    rc, output = netlab.ansible_playbook(playbook(tmp_path, tasks, str(results_path)), inventory(lab, tmp_path),
                                         check=check, diff=diff, json_output=False)
    assert rc == 0, output[-6000:]
    return json.loads(results_path.read_text())


def without(snapshot, *keys):
    return {key: value for key, value in snapshot.items() if key not in keys}


def our_lines_removed(text):
    return "\n".join(line for line in text.splitlines() if "NETKIT-" not in line)


MESSY = {"network_interface": "nm0", "ranges": ["192.0.2.7/24", "198.51.100.0/25", "198.51.100.0/24",
                                                  "2001:DB8:1::5/64"]}


def test_nftables_auto_interfaces_check_idempotence_absent(lab, tmp_path):
    build(lab)
    lab.exec("gw", ["nft", "-f", "-"], data=FOREIGN_NFT)
    foreign = lab.sh("gw", "nft list table inet foreign").stdout
    before = lab.snapshot("gw")

    predicted = run_tasks(lab, tmp_path, [("predict", MESSY, None)], check=True, diff=True)["predict"]
    assert predicted["changed"] is True
    assert lab.snapshot("gw") == before, "check mode changed the host"
    assert "net.ipv4.ip_forward = 1" in predicted["diff"]["after"]

    results = run_tasks(lab, tmp_path, [("apply", MESSY, None), ("again", MESSY, None),
                                        ("gather", {"state": "gathered"}, None)])
    apply, again, gathered = results["apply"], results["again"], results["gather"]
    assert apply["changed"] is True and apply["backend"] == "nftables", apply
    assert apply["ranges"] == ["192.0.2.0/24", "198.51.100.0/25", "198.51.100.0/24", "2001:db8:1::/64"]
    assert apply["interfaces"] == {"192.0.2.0/24": "up1", "198.51.100.0/25": "up2", "198.51.100.0/24": "up2",
                                   "2001:db8:1::/64": "up1"}
    assert apply["sysctls"] == {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
    assert again["changed"] is False, again["commands"]
    assert gathered["gathered"]["ranges"] == ["192.0.2.0/24", "198.51.100.0/24", "2001:db8:1::/64"]
    assert gathered["gathered"]["network_interface"] == "nm0" and gathered["gathered"]["nat"] is True

    assert lab.whoami("m1", SRV1, PORT) == GW_UP1
    assert lab.whoami("m1", SRV2, PORT) == GW_UP2
    assert lab.whoami("m1", SRV1_V6, PORT) == GW_UP1_V6
    assert lab.sh("gw", "nft list table inet foreign").stdout == foreign

    removed = run_tasks(lab, tmp_path, [("absent", {"state": "absent"}, None),
                                        ("absent again", {"state": "absent"}, None)])
    assert removed["absent"]["changed"] is True and removed["absent again"]["changed"] is False
    after = lab.snapshot("gw")
    # Forwarding stays on after absent (documented), and IPv6 forwarding makes the kernel add
    # subnet-router anycast routes to the local table: those two are the only expected differences.
    assert without(after, "sysctl", "route6") == without(before, "sysctl", "route6")
    assert "net.ipv4.ip_forward = 1" in after["sysctl"], "absent leaves forwarding as it is"


