# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module tests through ansible-playbook against namespace hosts: the inventory and one play of tasks of
one module whose results come back as JSON."""

from __future__ import annotations

import json

import yaml

import netlab


def write_inventory(lab, tmp_path, hosts=("gw1", "gw2")):
    inventory = {"all": {"vars": {"ansible_connection": "netkit.egress.netns",
                                  "ansible_python_interpreter": "/usr/bin/python3"},
                         "hosts": {host: {"ansible_host": lab.ns(host)} for host in hosts}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return str(path)


class Play:
    """One play of ``module`` tasks; every task's registered result is collected per host into a JSON
    file by a last task (read back independent of the stdout callback)."""

    def __init__(self, tmp_path, name, hosts="all", *, module):
        self.tmp_path, self.name, self.hosts, self.module = tmp_path, name, hosts, module
        self.tasks = []

    def task(self, name, when=None, ignore_errors=False, loop=None, **params):
        task = {"name": name, self.module: params, "register": f"r{len(self.tasks)}"}
        if when:
            task["when"] = when
        if ignore_errors:
            task["ignore_errors"] = True
        if loop is not None:
            task["loop"] = loop
        self.tasks.append(task)
        return self

    def register_of(self, name):
        """The variable that holds the result of task ``name`` (for later tasks' templates)."""
        return next(task["register"] for task in self.tasks if task["name"] == name)

    def run(self, inventory, check=False, diff=False):
        results_dir = self.tmp_path / f"{self.name}-results"
        results_dir.mkdir(exist_ok=True)
        collected = "{{ {" + ", ".join(f"{task['name']!r}: {task['register']}" for task in self.tasks) + \
            "} | to_json }}"
        collect = {"name": "collect", "ansible.builtin.copy": {
            "content": collected, "dest": f"{results_dir}/{{{{ inventory_hostname }}}}.json"},
            "check_mode": False, "diff": False}
        playbook = self.tmp_path / f"{self.name}.yml"
        playbook.write_text(yaml.safe_dump(
            [{"hosts": self.hosts, "gather_facts": False, "tasks": self.tasks + [collect]}], sort_keys=False))
        rc, text = netlab.ansible_playbook(str(playbook), inventory, check=check, diff=diff, json_output=False)
        assert rc == 0, text[-6000:]
        return {path.stem: json.loads(path.read_text()) for path in results_dir.glob("*.json")}
