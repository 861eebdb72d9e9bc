"""netkit.egress.nat_policy against real namespaces, proven with real TCP.

Topology (one bridge as the node subnet 192.168.1.0/24 and 2001:db8:1::/64):

  pod1a 10.10.1.5 --+                                      +-- gw1 .11 (holds .100)
  pod1b 10.10.1.6 --+ node1 .1 --+                         +-- gw2 .12 (holds .101)
  pod2  10.10.2.5 --- node2 .2 --+-- bridge --------------+-- rt .254 -- srv 203.0.113.10/.20

Nodes masquerade their pods to their own address with a foreign iptables rule (nft and legacy
variants), gw2 masquerades everything leaving eth0 (as docker hosts do); the server has no route
to the pod networks, so only NATed traffic can be answered.
"""

import json
import os
import re
import shutil

import pytest
import yaml

import netlab

SERVER = "203.0.113.10"
SERVER_EXCLUDED = "203.0.113.20"
SERVER6 = "2001:db8:203::10"
FLOATING_A = "192.168.1.100"
FLOATING_B = "192.168.1.101"
FLOATING6 = "2001:db8:1::100"
NODE1, NODE2 = "192.168.1.1", "192.168.1.2"

POLICY_A = {"name": "db-clients", "egress_ip": FLOATING_A, "sources": ["10.10.1.5"],
            "destinations": ["203.0.113.0/24"], "excluded_destinations": [SERVER_EXCLUDED + "/32"]}
POLICY_B = {"name": "api.clients", "egress_ip": FLOATING_B, "sources": ["10.10.2.0/24"],
            "destinations": ["203.0.113.0/24"]}
POLICY_V6 = {"name": "db-clients-v6", "egress_ip": FLOATING6, "sources": ["2001:db8:10:1::5"],
             "destinations": ["2001:db8:203::/64"]}
RETURN_ROUTES = [{"destination": "10.10.1.0/24", "via": NODE1},
                 {"destination": "10.10.2.0/24", "via": NODE2},
                 {"destination": "2001:db8:10:1::/64", "via": "2001:db8:1::1"}]

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: converge
      netkit.egress.nat_policy:
        role: "{{ nat_role }}"
        state: "{{ nat_state }}"
        config: "{{ nat_config }}"
        return_routes: "{{ nat_return_routes if nat_role == 'gateway' else omit }}"
      register: converge
      ignore_errors: true
    # Results go to a file per host (independent of the stdout callback).
    - name: collect
      ansible.builtin.copy:
        content: "{{ converge | to_json }}"
        dest: "{{ results_dir }}/{{ inventory_hostname }}.json"
      check_mode: false
      diff: false
"""


def build_cluster(lab):
    lab.add_host("sw")
    lab.bridge("sw", "br0")
    for host, forwarding in (("rt", True), ("srv", False), ("node1", True), ("node2", True),
                             ("gw1", False), ("gw2", False), ("pod1a", False), ("pod1b", False),
                             ("pod2", False)):
        lab.add_host(host, forwarding=forwarding)
    for host, last in (("rt", 254), ("node1", 1), ("node2", 2), ("gw1", 11), ("gw2", 12)):
        lab.attach("sw", "br0", host, "eth0")
        lab.addr(host, "eth0", f"192.168.1.{last}/24")
        lab.addr(host, "eth0", f"2001:db8:1::{last:x}/64")
        if host != "rt":
            lab.route(host, "default", via="192.168.1.254")
            lab.route(host, "::/0", via="2001:db8:1::fe")
    lab.link("rt", "eth1", "srv", "eth0")
    lab.addr("rt", "eth1", "203.0.113.1/24")
    lab.addr("rt", "eth1", "2001:db8:203::1/64")
    for address in (SERVER + "/24", SERVER_EXCLUDED + "/24"):
        lab.addr("srv", "eth0", address)
    lab.addr("srv", "eth0", SERVER6 + "/64")
    lab.route("srv", "default", via="203.0.113.1")
    lab.route("srv", "::/0", via="2001:db8:203::1")
    # node1: two pods on a bridge; node2: one pod on a veth.
    lab.bridge("node1", "pods")
    lab.addr("node1", "pods", "10.10.1.1/24")
    lab.addr("node1", "pods", "2001:db8:10:1::1/64")
    for pod, address in (("pod1a", "10.10.1.5"), ("pod1b", "10.10.1.6")):
        lab.attach("node1", "pods", pod, "eth0")
        lab.addr(pod, "eth0", address + "/24")
        lab.route(pod, "default", via="10.10.1.1")
    lab.addr("pod1a", "eth0", "2001:db8:10:1::5/64")
    lab.route("pod1a", "::/0", via="2001:db8:10:1::1")
    lab.link("node2", "pod0", "pod2", "eth0")
    lab.addr("node2", "pod0", "10.10.2.1/24")
    lab.addr("pod2", "eth0", "10.10.2.5/24")
    lab.route("pod2", "default", via="10.10.2.1")
    # What real nodes do: hide the pods behind the node address (a foreign rule, not ours).
    # node1 with iptables-nft, node2 with legacy xtables; gw2 masquerades everything like a docker host.
    lab.sh("node1", "iptables -t nat -A POSTROUTING -s 10.10.0.0/16 -o eth0 -j MASQUERADE")
    lab.sh("node1", "ip6tables -t nat -A POSTROUTING -s 2001:db8:10::/48 -o eth0 -j MASQUERADE")
    lab.sh("node2", "iptables-legacy -t nat -A POSTROUTING -s 10.10.0.0/16 -o eth0 -j MASQUERADE")
    lab.sh("gw2", "iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE")
    lab.addr("gw1", "eth0", FLOATING_A + "/24")
    lab.addr("gw1", "eth0", FLOATING6 + "/64")
    lab.addr("gw2", "eth0", FLOATING_B + "/24")
    lab.start_whoami("srv", 8080)


def write_inventory(lab, tmp_path):
    def host(name):
        return {"ansible_host": lab.ns(name)}
    inventory = {"all": {
        "vars": {"ansible_connection": "netkit.egress.netns",
                 "ansible_python_interpreter": "/usr/bin/python3"},
        "children": {
            "gateways": {"hosts": {"gw1": host("gw1"), "gw2": host("gw2")},
                         "vars": {"nat_role": "gateway"}},
            "nodes": {"hosts": {"node1": host("node1"), "node2": host("node2")},
                      "vars": {"nat_role": "source"}}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    playbook = tmp_path / "converge.yml"
    playbook.write_text(PLAYBOOK)
    return str(playbook), str(path)


def run_playbook(files, extra_vars, check=False, diff=False, limit=None):
    """``(rc, results per host, output)``; a failed module run shows as ``results[host]["failed"]``."""
    playbook, inventory = files
    results_dir = os.path.join(os.path.dirname(playbook), "results")
    shutil.rmtree(results_dir, ignore_errors=True)
    os.makedirs(results_dir)
    rc, output = netlab.ansible_playbook(playbook, inventory, check=check, diff=diff, limit=limit,
                                         extra_vars=dict(extra_vars, results_dir=results_dir),
                                         json_output=False)
    results = {}
    for name in os.listdir(results_dir):
        with open(os.path.join(results_dir, name)) as handle:
            results[name.removesuffix(".json")] = json.load(handle)
    return rc, results, output[-6000:]


def converge(files, config, state="overridden", check=False, diff=False, return_routes=None, limit=None):
    rc, results, output = run_playbook(
        files, {"nat_config": config, "nat_state": state,
                "nat_return_routes": RETURN_ROUTES if return_routes is None else return_routes},
        check=check, diff=diff, limit=limit)
    failed = {host: result["msg"] for host, result in results.items() if result.get("failed")}
    return (1 if failed or rc else 0), results, (failed or output)


COUNTERS = re.compile(r"counter packets \d+ bytes \d+|\[\d+:\d+\]")


def snapshots(lab, hosts):
    """Every host's state, without packet counters (neighbour discovery alone moves those)."""
    return {host: {part: COUNTERS.sub("counter", text) for part, text in lab.snapshot(host).items()}
            for host in hosts}


def assert_same_state(now, then, why):
    for host in then:
        for part in then[host]:
            assert now[host][part] == then[host][part], f"{why}: {host} {part}"


CLUSTER_HOSTS = ("node1", "node2", "gw1", "gw2")


def test_selected_workloads_leave_with_their_floating_ip(lab, tmp_path):
    build_cluster(lab)
    files = write_inventory(lab, tmp_path)
    assert lab.whoami("pod1a", SERVER) == NODE1  # the ordinary case: node masquerade

    pristine = snapshots(lab, CLUSTER_HOSTS)
    rc, results, output = converge(files, [POLICY_A, POLICY_B], check=True)
    assert rc == 0, output
    assert all(results[host]["changed"] for host in CLUSTER_HOSTS)
    assert_same_state(snapshots(lab, CLUSTER_HOSTS), pristine, "check mode changed a host")
    predicted = {host: results[host]["commands"] for host in CLUSTER_HOSTS}

    rc, results, output = converge(files, [POLICY_A, POLICY_B], diff=True)
    assert rc == 0, output
    assert {host: results[host]["commands"] for host in CLUSTER_HOSTS} == predicted
    assert results["gw1"]["sysctls"]["net.ipv4.ip_forward"] == {"before": "0", "after": "1"}
    assert [policy["name"] for policy in results["node1"]["diff"]["after"]["config"]] == \
        ["api.clients", "db-clients"]
    assert results["node1"]["diff"]["before"]["config"] == []

    assert lab.whoami("pod1a", SERVER) == FLOATING_A  # selected: floating IP, and the reply came back
    assert lab.whoami("pod2", SERVER) == FLOATING_B  # second policy, second gateway, side by side
    assert lab.whoami("pod1b", SERVER) == NODE1  # unselected workload
    assert lab.whoami("pod1a", SERVER_EXCLUDED) == NODE1  # excluded destination

    rc, results, output = converge(files, [POLICY_A, POLICY_B])
    assert rc == 0, output
    assert not any(results[host]["changed"] for host in CLUSTER_HOSTS), results
    assert all(results[host]["commands"] == [] for host in CLUSTER_HOSTS)

    # A network policy (foreign filter rule) still wins: nothing of ours accepts early.
    lab.sh("node1", f"iptables -I FORWARD -s 10.10.1.5 -d {SERVER} -j DROP")
    assert lab.whoami("pod1a", SERVER, timeout=1.5) is None
    lab.sh("node1", f"iptables -D FORWARD -s 10.10.1.5 -d {SERVER} -j DROP")
    assert lab.whoami("pod1a", SERVER) == FLOATING_A

    # The floating IP moves to gw2: the same policy, unchanged, follows it.
    lab.sh("gw1", f"ip addr del {FLOATING_A}/24 dev eth0")
    lab.sh("gw2", f"ip addr add {FLOATING_A}/24 dev eth0")
    lab.sh("gw2", f"arping -q -U -c 1 -I eth0 -s {FLOATING_A} {FLOATING_A}", check=False)
    assert lab.whoami("pod1a", SERVER) == FLOATING_A
    assert lab.whoami("pod2", SERVER) == FLOATING_B


def test_lifecycle_gathered_deleted_and_invalid_input(lab, tmp_path):
    build_cluster(lab)
    files = write_inventory(lab, tmp_path)
    pristine = snapshots(lab, CLUSTER_HOSTS)

    bad = dict(POLICY_A, sources=["10.10.1.5", "10.0.0.0/33"])
    rc, results, output = converge(files, [POLICY_B, bad])
    assert rc != 0
    assert "config[1] (db-clients).sources[1]: '10.0.0.0/33' is not a valid CIDR" in results["node1"]["msg"]
    mixed = dict(POLICY_A, destinations=["2001:db8:203::/64"])
    rc, results, output = converge(files, [mixed])
    assert rc != 0
    assert "destinations[0]: 2001:db8:203::/64 is IPv6 but egress_ip 192.168.1.100 is IPv4" \
        in results["gw1"]["msg"]
    rc, results, output = converge(files, [POLICY_A], return_routes=[{"destination": "10.10.1.0/24",
                                                                     "via": "2001:db8:1::1"}],
                                   limit="gateways")
    assert "return_routes[0].via: 2001:db8:1::1 is not of the family of destination 10.10.1.0/24" \
        in results["gw1"]["msg"]
    assert_same_state(snapshots(lab, CLUSTER_HOSTS), pristine, "invalid input changed a host")

    rc, results, output = converge(files, [POLICY_A, POLICY_V6], state="merged")
    assert rc == 0, output
    assert lab.whoami("pod1a", SERVER) == FLOATING_A
    assert lab.whoami("pod1a", SERVER6) == FLOATING6  # IPv6 variant: ip6 sets and ip6 snat

    # merged adds, and lists grow; replaced swaps one policy; others stay.
    rc, results, output = converge(files, [{"name": "db-clients", "sources": ["10.10.1.6"]}],
                                   state="merged")
    assert rc == 0, output
    assert results["node1"]["after"][0]["sources"] == ["10.10.1.5", "10.10.1.6"]
    assert lab.whoami("pod1b", SERVER) == FLOATING_A

    rc, results, output = converge(files, [dict(POLICY_A, sources=["10.10.1.6"])], state="replaced")
    assert rc == 0, output
    assert [policy["name"] for policy in results["node1"]["after"]] == ["db-clients", "db-clients-v6"]
    assert lab.whoami("pod1a", SERVER) == NODE1
    assert lab.whoami("pod1b", SERVER) == FLOATING_A

    rc, results, output = converge(files, [], state="gathered")
    assert rc == 0, output
    gathered = results["node1"]["gathered"]
    assert gathered == [
        {"name": "db-clients", "egress_ip": FLOATING_A, "sources": ["10.10.1.6"],
         "destinations": ["203.0.113.0/24"], "excluded_destinations": [SERVER_EXCLUDED],
         "interface": "eth0"},
        {"name": "db-clients-v6", "egress_ip": FLOATING6, "sources": ["2001:db8:10:1::5"],
         "destinations": ["2001:db8:203::/64"], "excluded_destinations": [], "interface": "eth0"}]
    assert sorted(route["destination"] for route in results["gw1"]["return_routes"]) == \
        ["10.10.1.0/24", "10.10.2.0/24", "2001:db8:10:1::/64"]
    # gathered is valid input again: feeding it back changes nothing on node1.
    rc, results, output = run_playbook(
        files, {"nat_config": gathered, "nat_state": "overridden", "nat_return_routes": []}, limit="node1")
    assert rc == 0, output
    assert results["node1"]["changed"] is False, results["node1"]
    # The same on a gateway: its gathered policies and return routes are valid input and change nothing.
    rc, results, output = converge(files, [], state="gathered", limit="gw1")
    assert rc == 0, output
    assert [policy["name"] for policy in results["gw1"]["gathered"]] == ["db-clients", "db-clients-v6"]
    rc, results, output = converge(files, results["gw1"]["gathered"],
                                   return_routes=results["gw1"]["return_routes"], limit="gw1")
    assert rc == 0, output
    assert results["gw1"]["changed"] is False, results["gw1"]

    rc, results, output = converge(files, [], state="deleted")
    assert rc == 0, output
    assert all(results[host]["changed"] for host in CLUSTER_HOSTS)
    assert_same_state(snapshots(lab, CLUSTER_HOSTS), pristine, "deleted did not restore the hosts")
    assert lab.whoami("pod1a", SERVER) == NODE1
    for host in CLUSTER_HOSTS:
        assert not os.path.exists(f"/etc/netns/{lab.ns(host)}/netkit-egress/nat_policy.json")


def test_rendered_touches_no_host(lab, tmp_path):
    lab.add_host("gw1")
    files = write_inventory_single(lab, tmp_path)
    pristine = lab.snapshot("gw1")
    rc, results, output = run_playbook(
        files, {"nat_config": [POLICY_A], "nat_state": "rendered", "nat_return_routes": RETURN_ROUTES})
    assert rc == 0, output
    result = results["gw1"]
    assert result["changed"] is False
    rendered = result["rendered"]
    assert rendered[0] == "nft -f - <<'EOF'"
    assert any("snat ip to 192.168.1.100" in line for line in rendered)
    assert "ip -4 route replace 10.10.1.0/24 via 192.168.1.1 table main proto 201" in rendered
    assert lab.snapshot("gw1") == pristine
    # The rendered script is valid nft.
    script = "\n".join(rendered[1:rendered.index("EOF")]) + "\n"
    lab.exec("gw1", ["nft", "-c", "-f", "-"], data=script)
    assert json.dumps(lab.snapshot("gw1")) == json.dumps(pristine)


def write_inventory_single(lab, tmp_path):
    inventory = {"all": {"hosts": {"gw1": {"ansible_host": lab.ns("gw1"), "nat_role": "gateway"}},
                         "vars": {"ansible_connection": "netkit.egress.netns",
                                  "ansible_python_interpreter": "/usr/bin/python3"}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    playbook = tmp_path / "converge.yml"
    playbook.write_text(PLAYBOOK)
    return str(playbook), str(path)


pytestmark = pytest.mark.slow


FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit", "fixtures", "nat_policy")


def without_handles(objects):
    """nft -j objects without what differs from one load to the next (handles, the version banner)."""
    kept = []
    for entry in objects:
        if "metainfo" in entry:
            continue
        (kind, body), = entry.items()
        kept.append({kind: {key: value for key, value in body.items() if key != "handle"}})
    return kept


@pytest.mark.parametrize("role", ["source", "gateway"])
def test_unit_fixtures_are_what_the_kernel_lists(lab, role):
    """The golden render of the unit tests, loaded into a real kernel, lists as the JSON fixture the read
    tests parse: the fixtures cannot drift from what nft really prints."""
    lab.add_host("gw1")
    with open(os.path.join(FIXTURES, f"{role}_table.nft"), encoding="utf-8") as handle:
        lab.exec("gw1", ["nft", "-f", "-"], data=handle.read())
    listed = json.loads(lab.exec("gw1", ["nft", "-j", "list", "table", "inet", "netkit_egress_nat"]).stdout)
    with open(os.path.join(FIXTURES, f"{role}_table.json"), encoding="utf-8") as handle:
        fixture = json.load(handle)
    assert without_handles(listed["nftables"]) == without_handles(fixture["nftables"])
