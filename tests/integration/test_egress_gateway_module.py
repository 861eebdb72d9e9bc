"""netkit.egress.egress_gateway against real namespaces, proven with real TCP (lab.whoami).

Topology: members m1 (network A, 100.64.1.10) and m2 (network B, 100.64.2.10) share a switch with the
gateway's nm0; the gateway reaches office 1 (192.0.2.0/24, 2001:db8:1::/64, server srv1) through up1 and
office 2 (198.51.100.0/24, server srv2) through up2. The servers have no route back to the members unless
a test gives them one.
"""

import json
import os
import re

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
DOCKER_LIKE_V6 = DOCKER_LIKE.replace("203.0.113.0/24", "2001:db8:ff::/64").replace("172.17.0.0/16", "fd00:17::/64")
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


def without_counters(snapshot):
    """Packet counters are traffic statistics, not configuration: zero them before comparing."""
    return {key: re.sub(r"packets \d+ bytes \d+", "packets 0 bytes 0", re.sub(r"\[\d+:\d+\]", "[0:0]", text))
            for key, text in snapshot.items()}


def our_lines_removed(text):
    return "\n".join(line for line in text.splitlines() if "NETKIT-" not in line)


MESSY = {"network_interface": "nm0",
         "ranges": ["192.0.2.7/24", "198.51.100.0/25", "198.51.100.0/24", "2001:DB8:1::5/64"]}


def test_nftables_auto_interfaces_check_idempotence_absent(lab, tmp_path):
    build(lab)
    lab.exec("gw", ["nft", "-f", "-"], data=FOREIGN_NFT)
    foreign = lab.sh("gw", "nft list table inet foreign").stdout
    before = lab.snapshot("gw")

    predicted = run_tasks(lab, tmp_path, [("predict", MESSY, None)], check=True, diff=True)["predict"]
    assert predicted["changed"] is True
    assert lab.snapshot("gw") == before, "check mode changed the host"
    assert "net.ipv4.ip_forward = 1" in predicted["diff"]["after"]

    results = run_tasks(lab, tmp_path, [("apply", dict(MESSY, full_result=True), None), ("again", MESSY, None),
                                        ("gather", {"state": "gathered"}, None)])
    apply, again, gathered = results["apply"], results["again"], results["gather"]
    assert apply["changed"] is True and apply["backend"] == "nftables", apply
    assert apply["ranges"] == ["192.0.2.0/24", "198.51.100.0/25", "198.51.100.0/24", "2001:db8:1::/64"]
    assert apply["interfaces"] == {"192.0.2.0/24": "up1", "198.51.100.0/25": "up2", "198.51.100.0/24": "up2",
                                   "2001:db8:1::/64": "up1"}
    assert apply["sysctls"] == {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
    # The default (summary) result: counts and interface names instead of the lists.
    assert again["range_count"] == 4 and again["outbound_interfaces"] == ["up1", "up2"]
    assert "ranges" not in again and "interfaces" not in again and "before" not in again
    assert again["changed"] is False, again["commands"]
    assert gathered["gathered"]["ranges"] == ["192.0.2.0/24", "198.51.100.0/24", "2001:db8:1::/64"]
    assert gathered["gathered"]["network_interface"] == "nm0" and gathered["gathered"]["nat"] is True
    # Without networks, with nat, our table has no forward chain (it would decide nothing): the masquerade
    # rules alone carry the paths, the host's own forwarding policy lets the packets through.
    ours = lab.sh("gw", "nft list table inet netkit_egress").stdout
    assert "hook forward" not in ours and "hook postrouting" in ours, ours

    assert lab.whoami("m1", SRV1, PORT) == GW_UP1
    assert lab.whoami("m1", SRV2, PORT) == GW_UP2
    assert lab.whoami("m1", SRV1_V6, PORT) == GW_UP1_V6
    assert lab.sh("gw", "nft list table inet foreign").stdout == foreign

    # gathered is valid input again; forward_accept false changes nothing either (there is no forward chain).
    replay = run_tasks(lab, tmp_path, [("replay", gathered["gathered"], None),
                                       ("no accept", dict(MESSY, forward_accept=False), None)])
    assert replay["replay"]["changed"] is False, replay["replay"]["commands"]
    assert replay["no accept"]["changed"] is False, replay["no accept"]["commands"]
    # Drift: a forward chain in our table (as an earlier version left it) and our masquerade rules flushed are
    # both repaired in one run, and the next run changes nothing (no loop over a chain we do not render).
    lab.sh("gw", "nft add chain inet netkit_egress forward '{ type filter hook forward priority filter; "
                 "policy accept; }' && nft flush chain inet netkit_egress postrouting")
    repaired = run_tasks(lab, tmp_path, [("repair", MESSY, None), ("after repair", MESSY, None)])
    assert repaired["repair"]["changed"] is True and repaired["after repair"]["changed"] is False
    assert lab.sh("gw", "nft list table inet netkit_egress").stdout == ours
    assert lab.whoami("m1", SRV1, PORT) == GW_UP1

    removed = run_tasks(lab, tmp_path, [("absent", {"state": "absent"}, None),
                                        ("absent again", {"state": "absent"}, None)])
    assert removed["absent"]["changed"] is True and removed["absent again"]["changed"] is False
    after = lab.snapshot("gw")
    # Forwarding stays on after absent (documented), and IPv6 forwarding makes the kernel add
    # subnet-router anycast routes to the local table: those two are the only expected differences.
    assert without(after, "sysctl", "route6") == without(before, "sysctl", "route6")
    assert "net.ipv4.ip_forward = 1" in after["sysctl"], "absent leaves forwarding as it is"


@pytest.mark.parametrize("variant", ["nft", "legacy"])
def test_iptables_docker_like_host(lab, tmp_path, variant):
    """auto picks iptables of the variant docker uses; egress works through FORWARD policy DROP;
    the docker-like rules are byte-identical after apply and after absent."""
    build(lab, gw_forwarding=True)
    lab.exec("gw", [f"iptables-{variant}-restore"], data=DOCKER_LIKE)
    lab.exec("gw", [f"ip6tables-{variant}-restore"], data=DOCKER_LIKE_V6)
    before = without_counters(lab.snapshot("gw"))
    foreign = our_lines_removed(before[f"iptables-{variant}"])
    args = dict(MESSY, persist=False)

    results = run_tasks(lab, tmp_path, [("apply", args, None), ("again", args, None),
                                        ("gather", {"state": "gathered"}, None)])
    apply = results["apply"]
    assert (apply["backend"], apply["iptables_variant"]) == ("iptables", variant), apply["backend_reason"]
    assert "DOCKER-USER" in apply["backend_reason"]
    assert results["again"]["changed"] is False, results["again"]["commands"]
    assert results["gather"]["gathered"]["ranges"] == ["192.0.2.0/24", "198.51.100.0/24", "2001:db8:1::/64"]
    assert results["gather"]["gathered"]["iptables_variant"] == variant
    applied = without_counters(lab.snapshot("gw"))
    assert our_lines_removed(applied[f"iptables-{variant}"]) == foreign
    assert applied["nft"] == before["nft"] or variant == "nft"  # iptables-nft rules live in nft tables
    assert lab.whoami("m1", SRV1, PORT) == GW_UP1
    assert lab.whoami("m1", SRV2, PORT) == GW_UP2
    assert lab.whoami("m1", SRV1_V6, PORT) == GW_UP1_V6

    removed = run_tasks(lab, tmp_path, [("absent", {"state": "absent"}, None)])
    assert removed["absent"]["changed"] is True
    assert without_counters(lab.snapshot("gw")) == before


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_segmentation_without_nat_and_backend_switch(lab, tmp_path, backend):
    """Network A reaches only its range, network B only its own; without NAT the servers see the
    members' addresses. Switching the backend afterwards leaves nothing of the old one."""
    build(lab, gw_forwarding=True)
    give_servers_return_routes(lab)
    args = {"network_interface": "nm0", "nat": False, "backend": backend, "iptables_variant": "legacy",
            "networks": [{"name": "net-a", "cidr": ["100.64.1.0/24", "fd00:64:1::/64"],
                          "ranges": ["192.0.2.0/24", "2001:db8:1::/64"]},
                         {"name": "net-b", "cidr": "100.64.2.0/24", "ranges": ["198.51.100.0/24"]}]}
    other = "iptables" if backend == "nftables" else "nftables"
    results = run_tasks(lab, tmp_path, [("apply", args, None), ("gather", {"state": "gathered"}, None)])
    assert results["apply"]["changed"] is True and results["apply"]["backend"] == backend
    gathered = results["gather"]["gathered"]
    assert gathered["networks"] == [
        {"name": "net-a", "cidr": ["100.64.1.0/24", "fd00:64:1::/64"], "ranges": ["192.0.2.0/24", "2001:db8:1::/64"]},
        {"name": "net-b", "cidr": ["100.64.2.0/24"], "ranges": ["198.51.100.0/24"]}]
    assert gathered["nat"] is False

    assert lab.whoami("m1", SRV1, PORT) == M1
    assert lab.whoami("m1", SRV1_V6, PORT) == M1_V6
    assert lab.whoami("m2", SRV2, PORT) == M2
    assert lab.whoami("m1", SRV2, PORT, timeout=1.0) is None
    assert lab.whoami("m2", SRV1, PORT, timeout=1.0) is None

    # gathered output is valid input again: re-applying it changes nothing; then switch backends.
    switched = run_tasks(lab, tmp_path, [("replay", dict(gathered, backend=backend, iptables_variant="legacy"), None),
                                         ("switch", dict(args, backend=other), None)])
    assert switched["replay"]["changed"] is False, switched["replay"]["commands"]
    assert switched["switch"]["changed"] is True and switched["switch"]["backend"] == other
    snapshot = lab.snapshot("gw")
    if other == "nftables":
        assert "NETKIT" not in snapshot["iptables-legacy"] + snapshot["ip6tables-legacy"]
    else:
        assert "netkit_egress" not in snapshot["nft"]
    assert lab.whoami("m1", SRV1, PORT) == M1
    assert lab.whoami("m2", SRV1, PORT, timeout=1.0) is None


def test_bad_input_fails_naming_the_field_and_changes_nothing(lab, tmp_path):
    build(lab)
    before = lab.snapshot("gw")
    cases = [
        ("cidr", {"network_interface": "nm0", "ranges": ["192.0.2.0/24", "10.0.0.0/33"]},
         "ranges[1]: '10.0.0.0/33' is not a valid CIDR"),
        ("unknown interface", {"network_interface": "nope0", "ranges": ["192.0.2.0/24"]},
         "network_interface: interface 'nope0' does not exist"),
        ("injection", {"network_interface": "nm0", "interface": 'up1" accept; #', "ranges": ["192.0.2.0/24"]},
         "interface: 'up1\" accept; #' is not a valid interface name"),
        ("network name", {"network_interface": "nm0",
                          "networks": [{"name": "a\nb", "cidr": "100.64.1.0/24", "ranges": ["192.0.2.0/24"]}]},
         "networks[0].name:"),
        ("no route", {"network_interface": "nm0", "ranges": ["203.0.113.0/24"]},
         "ranges[0]: no ipv4 route to 203.0.113.0/24"),
    ]
    results = run_tasks(lab, tmp_path, [(name, args, {"ignore_errors": True}) for name, args, _message in cases])
    for name, _args, message in cases:
        assert results[name].get("failed") is True, name
        assert message in results[name]["msg"], (name, results[name]["msg"])
    assert lab.snapshot("gw") == before


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_persist_restores_after_reboot(lab, tmp_path, backend):
    build(lab)
    args = dict(MESSY, backend=backend, iptables_variant="legacy", persist=True, **PERSIST_PATHS)
    results = run_tasks(lab, tmp_path, [("apply", args, None), ("again", args, None)])
    apply = results["apply"]
    assert results["again"]["changed"] is False, results["again"]["commands"]
    etc = f"/etc/netns/{lab.ns('gw')}/netkit-egress"
    expected = {"/etc/netkit-egress/sysctl.d/90-netkit-egress-gateway.conf",
                "/etc/netkit-egress/systemd/netkit-egress-gateway.service"}
    expected |= ({"/etc/netkit-egress/egress_gateway.nft"} if backend == "nftables" else
                 {"/etc/netkit-egress/egress_gateway.rules.v4", "/etc/netkit-egress/egress_gateway.rules.v6",
                  "/etc/netkit-egress/egress_gateway.ipset"})
    assert set(apply["persisted_files"]) == expected
    unit = open(f"{etc}/systemd/netkit-egress-gateway.service").read()
    exec_starts = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert len(exec_starts) == len(expected) - 1

    # "Reboot": our firewall objects and forwarding are gone, as on a fresh boot.
    if backend == "nftables":
        lab.sh("gw", "nft delete table inet netkit_egress")
    else:
        for tool in ("iptables-legacy", "ip6tables-legacy"):
            lab.sh("gw", f"{tool} -D FORWARD -j NETKIT-EGRESS-FWD && {tool} -F NETKIT-EGRESS-FWD && "
                         f"{tool} -X NETKIT-EGRESS-FWD && {tool} -t nat -D POSTROUTING -j NETKIT-EGRESS-NAT && "
                         f"{tool} -t nat -F NETKIT-EGRESS-NAT && {tool} -t nat -X NETKIT-EGRESS-NAT")
        # The sets the rules match on are gone after a reboot too: the unit must create them first.
        lab.sh("gw", "for set in $(ipset list -n | grep '^netkit-egress-'); do ipset destroy $set; done")
        assert lab.sh("gw", "ipset list -n").stdout.strip() == ""
    lab.sysctl("gw", "net.ipv4.ip_forward", 0)
    lab.sysctl("gw", "net.ipv6.conf.all.forwarding", 0)
    assert lab.whoami("m1", SRV1, PORT, timeout=1.0) is None
    for command in exec_starts:
        lab.exec("gw", command.split())
    assert lab.whoami("m1", SRV1, PORT) == GW_UP1
    assert lab.whoami("m1", SRV1_V6, PORT) == GW_UP1_V6

    removed = run_tasks(lab, tmp_path, [("absent", dict(PERSIST_PATHS, state="absent"), None)])
    assert removed["absent"]["changed"] is True
    for path in expected:
        assert not os.path.exists(path.replace("/etc/netkit-egress", etc)), path


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_excluded_ranges_are_neither_forwarded_nor_masqueraded(lab, tmp_path, backend):
    """The office range minus an excluded part: a server in the range sees the gateway's address (NAT), a
    server in the excluded part sees the member's own address (our rules left it alone, the host's
    forwarding carried it and the server has a return route), in both families. gathered reports the
    remaining ranges and is a no-op as input again."""
    build(lab)
    give_servers_return_routes(lab)
    # srv1 answers at 192.0.2.10 and 2001:db8:1::10 (kept) and at two addresses in the excluded parts.
    excluded4, excluded6 = "192.0.2.200", "2001:db8:1:0:8000::10"
    lab.addr("srv1", "eth0", excluded4 + "/24")
    lab.addr("srv1", "eth0", excluded6 + "/64")
    args = {"network_interface": "nm0", "backend": backend, "iptables_variant": "legacy",
            "ranges": ["192.0.2.0/24", "2001:db8:1::/64"],
            "excluded_ranges": ["192.0.2.128/25", "2001:db8:1:0:8000::/65"]}
    results = run_tasks(lab, tmp_path, [("apply", args, None), ("again", args, None),
                                        ("gather", {"state": "gathered"}, None)])
    assert results["apply"]["changed"] is True and results["apply"]["backend"] == backend
    assert results["apply"]["excluded_ranges"] == ["192.0.2.128/25", "2001:db8:1:0:8000::/65"]
    assert results["again"]["changed"] is False, results["again"]["commands"]
    gathered = results["gather"]["gathered"]
    assert gathered["ranges"] == ["192.0.2.0/25", "2001:db8:1::/65"] and gathered["excluded_ranges"] == []

    assert lab.whoami("m1", SRV1, PORT) == GW_UP1
    assert lab.whoami("m1", SRV1_V6, PORT) == GW_UP1_V6
    assert lab.whoami("m1", excluded4, PORT) == M1
    assert lab.whoami("m1", excluded6, PORT) == M1_V6

    replay = run_tasks(lab, tmp_path, [("replay", dict(gathered, iptables_variant="legacy"), None)])["replay"]
    assert replay["changed"] is False, replay["commands"]
    assert lab.whoami("m1", excluded4, PORT) == M1 and lab.whoami("m1", SRV1, PORT) == GW_UP1
