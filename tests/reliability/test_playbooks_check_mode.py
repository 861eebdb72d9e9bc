# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 4, items 1 and 4 for the playbooks (egress_gateway.yml on the mesh lab, egress_nat.yml on the
cluster lab), through ansible-playbook and the netns connection, as a user runs them.

On the empty lab, the converged lab and a drifted lab (one of our objects deleted by hand on some
hosts): ``--check --diff`` changes no host (full snapshots of every host) and reports, task by task
and host by host, the same changed/diff as the real run that follows; the real run repairs the drift
(every host byte-identical to the converged lab).
"""

import pytest

import cluster_lab
import harness
import lab as mesh_lab
from netlab import ansible_playbook, task_results

MESH_HOSTS = ["gw", "m1", "m2"]
MESH_DRIFT = [("gw", "nft delete element inet netkit_egress netkit_p0_dst4_l24 '{ 192.168.50.0 }'"),
              ("m1", "ip route del 192.168.50.0/24 proto 201"),
              ("gw", "sysctl -qw net.ipv4.ip_forward=0")]
NAT_HOSTS = cluster_lab.cluster_hosts()
NAT_DRIFT = [("gw1", "ip -4 addr flush dev eth0 label eth0:nk"),
             ("node1", "ip rule del priority 21000"),
             ("node2", "nft flush chain inet netkit_egress_nat postrouting")]


def predictions(output):
    """(task, host) -> (changed, diff) of every task that ran (not skipped) and may change something."""
    found = {}
    for task, host, result in task_results(output):
        if result.get("skipped") or "changed" not in result:
            continue
        found[(task, host)] = (bool(result.get("changed")), result.get("diff"))
    return found


def snapshots(lab, hosts):
    return {host: harness.snapshot(lab, host) for host in hosts}


def check_then_real(lab, hosts, playbook, inventory, label, problems):
    before = snapshots(lab, hosts)
    rc_check, check = ansible_playbook(playbook, inventory, check=True, diff=True)
    after_check = snapshots(lab, hosts)
    rc_real, real = ansible_playbook(playbook, inventory, diff=True)
    changed_hosts = [host for host in hosts if after_check[host] != before[host]]
    # Tasks that run in only one of the two are left out: the roles' validation task (a check-mode run of
    # the module before any change) is skipped under --check by design.
    predicted, done = predictions(check), predictions(real)
    common = set(predicted) & set(done)
    same = bool(common) and all(predicted[key] == done[key] for key in common)
    ok = rc_check == 0 and rc_real == 0 and not changed_hosts and same
    if not ok:
        differing = {key: (predicted[key], done[key]) for key in common if predicted[key] != done[key]}
        problems.append(f"{label}: rc {rc_check}/{rc_real}, hosts changed by check {changed_hosts}, "
                        f"differing predictions {str(differing)[:1500]}")
    return ok, len(changed_hosts), check


def any_changed(output):
    return any(counts.get("changed") for counts in output.get("stats", {}).values())


@pytest.mark.parametrize("playbook_name", ["egress_gateway.yml", "egress_nat.yml"])
def test_playbook_check_mode_truthful(lab, tmp_path, playbook_name):
    if playbook_name == "egress_gateway.yml":
        mesh_lab.build(lab)
        inventory, hosts, drifts = mesh_lab.write_inventory(lab, str(tmp_path / "inventory.yml")), MESH_HOSTS, MESH_DRIFT
        playbook = mesh_lab.PLAYBOOK
    else:
        cluster_lab.build(lab)
        inventory, hosts, drifts = cluster_lab.write_inventory(lab, str(tmp_path / "inventory.yml")), NAT_HOSTS, NAT_DRIFT
        playbook = mesh_lab.PLAYBOOK.replace("egress_gateway.yml", "egress_nat.yml")
    problems = []
    tried = passed = host_changes = 0
    for label in ("empty lab", "converged lab"):
        ok, changed, check = check_then_real(lab, hosts, playbook, inventory, label, problems)
        if any_changed(check) != (label == "empty lab"):
            problems.append(f"{label}: check reported changes: {any_changed(check)}")
            ok = False
        tried, passed, host_changes = tried + 1, passed + ok, host_changes + changed
    converged = snapshots(lab, hosts)
    for host, command in drifts:
        lab.sh(host, command)
    ok, changed, check = check_then_real(lab, hosts, playbook, inventory, "drifted lab", problems)
    repaired = snapshots(lab, hosts)
    drift_hosts = sorted({host for host, _command in drifts})
    reported = sorted(host for host, counts in check["stats"].items() if counts.get("changed"))
    drift_ok = ok and reported == drift_hosts and repaired == converged
    if not drift_ok:
        problems.append(f"drift: check reported {reported}, drifted {drift_hosts}, not repaired on "
                        f"{[host for host in hosts if repaired[host] != converged[host]]}")
    tried, passed, host_changes = tried + 1, passed + ok, host_changes + changed
    harness.record("1 check mode truthful (playbook)", playbook_name, tried, passed, host_changes)
    harness.record("4 drift reported and repaired", f"playbook {playbook_name}", len(drifts),
                   len(drifts) if drift_ok else 0)
    assert not problems, "\n".join(problems)
