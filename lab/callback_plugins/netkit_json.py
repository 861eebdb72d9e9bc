"""Stdout callback for the lab and the tests: the whole run as one JSON document.

Same shape as the well-known ``json`` callback (``plays[].tasks[].hosts{}`` and ``stats{}``), which
ansible-core itself does not ship. Not part of the collection.
"""

from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase
from ansible.vars.clean import module_response_deepcopy, strip_internal_keys

DOCUMENTATION = """
name: netkit_json
type: stdout
short_description: the run as one JSON document (lab and tests only)
description: [Prints plays, tasks, per-host results and stats as JSON at the end of the run.]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "netkit_json"

    def __init__(self, display=None):
        super().__init__(display)
        self.plays = []

    def v2_playbook_on_play_start(self, play):
        self.plays.append({"play": {"name": play.get_name()}, "tasks": []})

    def _task_entry(self, task):
        tasks = self.plays[-1]["tasks"]
        if not tasks or tasks[-1]["task"]["id"] != task._uuid:
            tasks.append({"task": {"name": task.get_name(), "id": task._uuid}, "hosts": {}})
        return tasks[-1]

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_entry(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task_entry(task)

    def _record(self, result, **flags):
        entry = self._task_entry(result.task)
        data = strip_internal_keys(module_response_deepcopy(result.result))
        data.update(flags)
        entry["hosts"][result.host.get_name()] = data

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats):
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        self._display.display(json.dumps({"plays": self.plays, "stats": summary}, indent=1, default=str,
                                         sort_keys=True))
