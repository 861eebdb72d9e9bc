# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The egress gateway playbook through ansible-runner, the engine under AWX / Automation Platform jobs.

The job is the "Egress gateway" job template of docs/awx.md: its project playbook (read from that page), which
maps the survey answers onto the chosen gateway and imports netkit.egress.egress_gateway, the inventory of the
mesh lab (namespace hosts), the survey answers as extra variables; then a "Check" job with "Show Changes"
(--check --diff), a "Run" job and a second "Run" job.
"""

import os
import re
import sys

import ansible_runner
import yaml

import lab as mesh_lab

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GATEWAY_TASK = "Converge the egress gateway (ranges, NAT, segmentation, forwarding)"
ROUTES_TASK = "Converge the routes to the gateways' ranges"
HOSTS = ["gw", "m1", "m2"]
# Survey answers as AWX passes them: every answer is a string, a textarea keeps its newlines.
SURVEY = {"survey_gateway": "gw", "survey_ranges": "192.168.50.0/24\n2001:db8:50::/64", "survey_nat": "true",
          "survey_state": "present"}


def project_playbook():
    """The project playbook of the egress gateway job template, as docs/awx.md shows it."""
    with open(os.path.join(REPO_ROOT, "docs", "awx.md"), encoding="utf-8") as handle:
        blocks = re.findall(r"```yaml\n(.*?)```", handle.read(), re.S)
    playbooks = [block for block in blocks if block.startswith("# egress_gateway.yml")]
    assert len(playbooks) == 1, "docs/awx.md shows the egress gateway project playbook once"
    return playbooks[0]


def run_job(private_data_dir, inventory, cmdline=None):
    """One job, as AWX starts it: a fresh private data directory with the project in it (runner keeps
    what it was given in env/, so a reused directory would replay the previous job's --check).
    Returns (runner, {(event, task, host): event_data})."""
    project = private_data_dir / "project"
    project.mkdir(parents=True)
    (project / "egress_gateway.yml").write_text(project_playbook())
    runner = ansible_runner.run(
        private_data_dir=str(private_data_dir), playbook="egress_gateway.yml", inventory=str(inventory),
        extravars=SURVEY, cmdline=cmdline, quiet=True, timeout=300,
        envvars={
            "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO_ROOT, ".venv", "collections"),
            "ANSIBLE_REMOTE_TMP": "/tmp/.ansible-netkit-remote",
        })
    events = {}
    for event in runner.events:
        data = event.get("event_data", {})
        if event["event"].startswith("runner_on_"):
            events[(event["event"], data.get("task"), data.get("host"))] = data
    return runner, events


def module_results(events):
    """host -> result of the task that calls the collection's module on it."""
    return {host: data["res"] for (name, task, host), data in events.items()
            if name == "runner_on_ok" and task in (GATEWAY_TASK, ROUTES_TASK)}


def changed_hosts(runner):
    return sorted(host for host, count in runner.stats.get("changed", {}).items() if count)


def test_check_and_diff_then_run_then_nothing_to_do(lab, tmp_path):
    mesh_lab.build(lab)
    # The lab's inventory without the gateway's ranges: only the survey gives them.
    spec = mesh_lab.inventory(lab)
    del spec["all"]["children"]["egress_gateways"]["hosts"]["gw"]["egress_gateway_ranges"]
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump(spec))
    before = {host: lab.snapshot(host) for host in HOSTS}

    # "Check" job type with "Show Changes".
    runner, events = run_job(tmp_path / "check-job", inventory, cmdline="--check --diff")
    assert (runner.status, runner.rc) == ("successful", 0), runner.stdout.read()
    results = module_results(events)
    assert sorted(results) == HOSTS
    assert all(result["changed"] for result in results.values()), results
    assert "192.168.50.0/24" in str(results["gw"]["diff"]["after"])
    assert "192.168.50.0/24" not in str(results["gw"]["diff"]["before"])
    for member in ("m1", "m2"):
        assert "192.168.50.0/24 via 10.100.0.1" in str(results[member]["diff"]), results[member]["diff"]
    assert changed_hosts(runner) == HOSTS
    assert {host: lab.snapshot(host) for host in HOSTS} == before, "a Check job changed a host"

    # "Run" job: the changes the check predicted.
    runner, events = run_job(tmp_path / "run-job", inventory)
    assert (runner.status, runner.rc) == ("successful", 0), runner.stdout.read()
    assert changed_hosts(runner) == HOSTS
    assert "table inet netkit_egress" in lab.sh("gw", "nft list tables").stdout
    lab.start_whoami("srv", mesh_lab.WHOAMI_PORT)
    assert lab.whoami("m1", "192.168.50.10", mesh_lab.WHOAMI_PORT) == "192.168.50.1"

    # A second "Run" job has nothing to do.
    after = {host: lab.snapshot(host) for host in HOSTS}
    runner, events = run_job(tmp_path / "second-run-job", inventory, cmdline="--diff")
    assert (runner.status, runner.rc) == ("successful", 0), runner.stdout.read()
    assert changed_hosts(runner) == []
    assert not any(result["changed"] for result in module_results(events).values())
    assert {host: lab.snapshot(host) for host in HOSTS} == after
