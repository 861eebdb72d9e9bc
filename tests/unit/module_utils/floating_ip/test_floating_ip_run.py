# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The floating_ip run's wiring, with a fake `ip` (no kernel): what it applies, and what a failure leaves."""

from __future__ import annotations

import errno
import json
import os

import pytest

from ansible_collections.netkit.egress.plugins.module_utils import _host
from ansible_collections.netkit.egress.plugins.module_utils._floating_ip import run as floating_ip
from ansible_collections.netkit.egress.plugins.module_utils._host import Host, HostError

IP_ADDR = [{"ifname": "eth0", "link_type": "ether", "address": "02:00:00:00:00:01", "addr_info": [
    {"family": "inet", "local": "192.168.1.1", "prefixlen": 24, "scope": "global"}]}]


class FakeModule:
    """Just enough of AnsibleModule for Host: answers `ip -j address show`, records every batch."""

    def __init__(self, state_file, check_mode=False, **params):
        self.params = dict({"addresses": ["192.168.1.100"], "interface": None, "prefix_length": None,
                            "state": "present", "announce": False, "state_file": str(state_file),
                            "persist": False, "persist_dir": str(state_file.parent),
                            "systemd_unit_dir": "/nonexistent"}, **params)
        self.check_mode = check_mode
        self._diff = False
        self.batches = []
        self.undo_batches = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return f"/usr/sbin/{name}"

    def run_command(self, argv, data=None, binary_data=False, environ_update=None, check_rc=False):
        args = list(argv[1:])
        if args == ["-j", "address", "show"]:
            return 0, json.dumps(IP_ADDR), ""
        if args == ["-batch", "-"]:
            self.batches.append(data.splitlines())
            return 0, "", ""
        if args == ["-force", "-batch", "-"]:
            self.undo_batches.append(data.splitlines())
            return 0, "", ""
        raise AssertionError(f"unexpected command {args}")

    @staticmethod
    def atomic_move(source, destination):
        os.replace(source, destination)

    def warn(self, message):
        raise AssertionError(message)


def test_adds_the_address_then_records_it(tmp_path):
    module = FakeModule(tmp_path / "floating_ips.json")
    result = floating_ip.converge(module, Host(module))
    assert result["changed"] and result["added"] == ["192.168.1.100"]
    assert module.batches == [["address add 192.168.1.100/24 dev eth0 noprefixroute label eth0:nk"]]
    recorded = json.loads((tmp_path / "floating_ips.json").read_text())["addresses"]
    assert recorded == [{"address": "192.168.1.100", "interface": "eth0", "prefix_length": 24}]


def test_check_mode_applies_and_writes_nothing(tmp_path):
    module = FakeModule(tmp_path / "floating_ips.json", check_mode=True)
    result = floating_ip.converge(module, Host(module))
    assert result["changed"] and result["commands"] == [
        "address add 192.168.1.100/24 dev eth0 noprefixroute label eth0:nk"]
    assert module.batches == [] and not (tmp_path / "floating_ips.json").exists()


def test_a_state_file_that_cannot_be_written_rolls_the_addresses_back(tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(_host.tempfile, "mkstemp", disk_full)
    module = FakeModule(tmp_path / "floating_ips.json")
    with pytest.raises(HostError) as error:
        floating_ip.converge(module, Host(module))
    message = str(error.value)
    assert message.startswith("applying state file failed: writing ") and "rolled back" in message
    assert module.batches == [["address add 192.168.1.100/24 dev eth0 noprefixroute label eth0:nk"]]
    assert module.undo_batches == [["address del 192.168.1.100/24 dev eth0"]]
    # Nothing is held after the roll-back and there was no state file: none is written.
    assert "recording" not in message and not (tmp_path / "floating_ips.json").exists()


def test_persist_predicts_writes_and_removes_the_boot_files(tmp_path):
    state_file = tmp_path / "floating_ips.json"
    start = tmp_path / "floating_ip.start"
    check = FakeModule(state_file, check_mode=True, persist=True)
    check._diff = True
    predicted = floating_ip.converge(check, Host(check))
    assert f"write {start}" in predicted["commands"] and not start.exists()
    assert predicted["diff"]["before"]["files"] == {}
    assert sorted(predicted["diff"]["after"]["files"]) == [str(start)]

    module = FakeModule(state_file, persist=True)
    result = floating_ip.converge(module, Host(module))
    assert result["persisted_files"] == [str(start)]
    assert "address replace 192.168.1.100/24 dev eth0 noprefixroute label eth0:nk" in start.read_text()
    assert os.stat(start).st_mode & 0o777 == 0o755
    # Held already (the fake host answers without the address, so the run adds it again; the files stay).
    again = FakeModule(state_file, persist=True)
    assert [command for command in floating_ip.converge(again, Host(again))["commands"]
            if command.startswith("write")] == []

    released = FakeModule(state_file, addresses=[], state="exact", persist=True)
    floating_ip.converge(released, Host(released))
    assert not start.exists()
