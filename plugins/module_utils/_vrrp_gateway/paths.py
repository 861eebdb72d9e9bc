# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the VRRP gateway keeps its files: configuration under ``config_dir``, runtime state (pid files,
sockets, the notify FIFO, the state file) under ``run_dir``. On namespace hosts the netns connection makes
both private per host."""

from __future__ import annotations

import os
from typing import NamedTuple

from ansible_collections.netkit.egress.plugins.module_utils import _boot

UNIT_NAMES = (_boot.KEEPALIVED_UNIT, _boot.CONNTRACKD_UNIT)


class Paths(NamedTuple):
    config_dir: str
    run_dir: str
    unit_dir: str

    def conf(self, name):
        return os.path.join(self.config_dir, name)

    def run(self, name):
        return os.path.join(self.run_dir, name)

    @property
    def keepalived_conf(self):
        return self.conf("keepalived.conf")

    @property
    def conntrackd_conf(self):
        return self.conf("conntrackd.conf")

    @property
    def notify_program(self):
        return self.conf("netkit-vrrp-notify")

    @property
    def notify_config(self):
        return self.conf("notify.json")

    @property
    def track_program(self):
        return self.conf("track-uplink")

    @property
    def start_program(self):
        return self.conf("start")

    @property
    def stop_program(self):
        return self.conf("stop")

    @property
    def keepalived_pid(self):
        return self.run("keepalived.pid")

    @property
    def vrrp_pid(self):
        return self.run("keepalived-vrrp.pid")

    @property
    def conntrackd_pid(self):
        return self.run("conntrackd.pid")

    @property
    def state_file(self):
        return self.run("vrrp_state.json")

    @property
    def track_file(self):
        return self.run("vrrp_fence.track")

    @property
    def fifo(self):
        return self.run("vrrp_notify.fifo")

    def unit(self, name):
        return os.path.join(self.unit_dir, name)
