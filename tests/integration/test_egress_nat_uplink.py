"""Without VRRP (gateway_group_failover: none): a gateway node whose uplink is down is unavailable to a run.

The holder of the egress IP keeps answering Ansible (its namespace is there) but its link to the nodes' subnet is
down: a re-run succeeds, moves its floating IPs to the other gateway node, and the selected pod leaves with the
egress IP again. When the link is back, a re-run leaves every floating IP on exactly one host (every namespace's
addresses, and an ARP request from the nodes' subnet answered by one MAC); gateway_group_state: absent hands a
node's floating IPs to the other one.
"""

import os
import re

import yaml

import cluster_lab
from netlab import REPO_ROOT, ansible_playbook, task_results

PLAYBOOK = os.path.join(REPO_ROOT, "playbooks", "egress_nat.yml")
STATUS_PLAYBOOK = os.path.join(REPO_ROOT, "playbooks", "status.yml")
RELEASE_TASK = "Release the floating IPs allocated to another gateway node (before anyone adds them)"
HOLD_TASK = "Hold exactly the floating IPs allocated to this gateway node"
FLOATING_IPS = ("192.168.1.100", "192.168.1.101", "192.168.1.102")
EGRESS_IP = FLOATING_IPS[0]


def holders(lab, address):
    """Every host of the lab (gateways, nodes, router, pods, switch) that has ``address`` configured."""
    return [host for host in lab.hosts if f" {address}/" in lab.sh(host, "ip -o addr show", check=False).stdout]


def arp_answerers(lab, address, asker="rt"):
    """The MACs that answer broadcast ARP requests for ``address`` on the nodes' subnet (two requests, 1 s apart;
    ``-b``: broadcast both, so that a second answerer is heard too)."""
    out = lab.sh(asker, f"arping -b -c 2 -w 2 -I eth0 {address}", check=False).stdout
    return set(re.findall(r"reply from \S+ \[([0-9A-Fa-f:]{17})\]", out))


def role_task_results(output, task_name, host):
    """Results of a role's task (listed as ``<role> : <name>``) on ``host``."""
    return [result for name, _host, result in task_results(output, host=host) if name.endswith(f" : {task_name}")]


def mac_of(lab, host):
    return lab.sh(host, "cat /sys/class/net/eth0/address").stdout.strip().upper()


def converge(lab, inventory):
    rc, output = ansible_playbook(PLAYBOOK, inventory)
    assert rc == 0, output
    assert all(counts["failures"] == 0 and counts["unreachable"] == 0 for counts in output["stats"].values()), \
        output["stats"]
    return output


def test_uplink_down_moves_the_floating_ips_and_the_returning_node_holds_none_twice(lab, tmp_path):
    cluster_lab.build(lab)
    inventory = cluster_lab.write_inventory(lab, str(tmp_path / "inventory.yml"))
    converge(lab, inventory)
    [holder] = holders(lab, EGRESS_IP)
    [survivor] = [gateway for gateway in cluster_lab.GATEWAYS if gateway != holder]
    assert lab.whoami("p1a", cluster_lab.SERVER) == EGRESS_IP

    # The holder's link to the nodes' subnet goes down; the host itself still answers Ansible.
    lab.sh(holder, "ip link set eth0 down")
    assert lab.whoami("p1a", cluster_lab.SERVER, timeout=2) is None

    output = converge(lab, inventory)
    for address in FLOATING_IPS:
        assert holders(lab, address) == [survivor], address
        assert arp_answerers(lab, address) == {mac_of(lab, survivor)}, address
    assert lab.whoami("p1a", cluster_lab.SERVER) == EGRESS_IP
    assert lab.whoami("p2a", cluster_lab.SERVER) == EGRESS_IP
    # Unselected pods still leave with their node's address.
    assert lab.whoami("p1b", cluster_lab.SERVER) == cluster_lab.NODES["node1"]

    # status.yml names the unavailable node and why.
    status_file = tmp_path / "status.yml"
    rc, status = ansible_playbook(STATUS_PLAYBOOK, inventory, extra_vars={"egress_nat_status_file": str(status_file)})
    assert rc == 0, status
    [lines] = [r["msg"] for _name, _host, r in task_results(status, "Show floating IPs and policies") if "msg" in r]
    row = next(line for line in lines if line.startswith(holder + " "))
    assert row.split()[1] == "Down" and "uplink down: eth0" in row, lines
    group = yaml.safe_load(status_file.read_text())["networkGatewayGroups"][0]["status"]
    assert group["nodes"] == {holder: "Down", survivor: "Up"}
    assert group["floatingIPs"] == dict.fromkeys(FLOATING_IPS, survivor)

    # The link comes back (the host's network configuration restores its default route, nothing else).
    lab.sh(holder, "ip link set eth0 up && ip route replace default via 192.168.1.254")
    output = converge(lab, inventory)
    placed = {}
    for address in FLOATING_IPS:
        [placed[address]] = holders(lab, address)
        assert arp_answerers(lab, address) == {mac_of(lab, placed[address])}, address
    # Balanced again (2 and 1), and the egress IP did not move a second time.
    assert sorted(list(placed.values()).count(gateway) for gateway in cluster_lab.GATEWAYS) == [1, 2]
    assert placed[EGRESS_IP] == survivor
    # The one that moved back: the survivor released it in a task that ended on every host before the task
    # in which the returning node added it (Ansible's linear strategy), so no two held it at once.
    [moved] = [address for address, gateway in placed.items() if gateway == holder]
    [released] = role_task_results(output, RELEASE_TASK, survivor)
    [added] = role_task_results(output, HOLD_TASK, holder)
    assert released["removed"] == [moved] and added["added"] == [moved]
    assert lab.whoami("p1a", cluster_lab.SERVER) == EGRESS_IP
    assert lab.whoami("p2a", cluster_lab.SERVER) == EGRESS_IP

    output = converge(lab, inventory)
    assert {host: counts["changed"] for host, counts in output["stats"].items() if counts["changed"]} == {}

    # gateway_group_state: absent on the returning node hands its floating IP to the other one.
    document = yaml.safe_load(open(inventory))
    document["all"]["children"]["egress_nat_gateways"]["hosts"][holder]["gateway_group_state"] = "absent"
    with open(inventory, "w") as handle:
        yaml.safe_dump(document, handle, sort_keys=False)
    converge(lab, inventory)
    for address in FLOATING_IPS:
        assert holders(lab, address) == [survivor], address
    assert lab.whoami("p1a", cluster_lab.SERVER) == EGRESS_IP
