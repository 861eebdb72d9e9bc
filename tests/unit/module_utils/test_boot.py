# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one renderer of boot commands (``_boot``) and the boot files of nat_policy and floating_ip (pure)."""

from __future__ import annotations

import subprocess

from ansible_collections.netkit.egress.plugins.module_utils import _boot
from ansible_collections.netkit.egress.plugins.module_utils._floating_ip import persist as floating_persist
from ansible_collections.netkit.egress.plugins.module_utils._floating_ip.model import FloatingIP
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy import persist as nat_persist
from ansible_collections.netkit.egress.plugins.module_utils._vrrp_gateway import boot as vrrp_boot

COMMANDS = [["/usr/sbin/nft", "-f", "/etc/netkit-egress/x.nft"], ["/sbin/ip", "-4", "-batch", "/etc/x y.ipv4"]]
BINARIES = {"sysctl": "/sbin/sysctl", "nft": "/usr/sbin/nft", "ip": "/sbin/ip"}


def test_unit_and_start_program_run_the_same_commands_in_the_same_order():
    unit = _boot.render_unit("nat_policy", "test", COMMANDS, after=("network-online.target",),
                             wants=("network-online.target",))
    program = _boot.render_start_program("nat_policy", "x.service", COMMANDS)
    assert _boot.commands(unit) == _boot.commands(program) == COMMANDS
    assert program.startswith("#!/bin/sh\n# Managed by netkit.egress.nat_policy; changes are overwritten.\n")
    assert "\nset -e\n" in program
    # A path with a space stays one argument, in the unit as in the program.
    assert "ExecStart=/sbin/ip -4 -batch '/etc/x y.ipv4'" in unit.splitlines()
    assert unit.splitlines()[1:7] == ["[Unit]", "Description=test", "Wants=network-online.target",
                                      "After=network-online.target", "", "[Service]"]
    assert "Type=oneshot" in unit and "RemainAfterExit=yes" in unit and "WantedBy=multi-user.target" in unit


def test_boot_files_without_commands_are_none_and_the_unit_only_with_a_unit_dir():
    assert _boot.boot_files("m", "u.service", "d", {"/p/data": "x"}, [], "/p/start", "/units") == {}
    files = _boot.boot_files("m", "u.service", "d", {"/p/data": "x"}, COMMANDS, "/p/start", None)
    assert files["/p/data"] == ("x", 0o644)
    assert files["/p/start"][1] == 0o755 and set(files) == {"/p/data", "/p/start"}
    with_unit = _boot.boot_files("m", "u.service", "d", {"/p/data": "x"}, COMMANDS, "/p/start", "/units")
    assert _boot.commands(with_unit["/units/u.service"][0]) == _boot.commands(with_unit["/p/start"][0]) == COMMANDS


def test_nat_policy_boot_files_restore_sysctls_table_rules_and_routes_in_order():
    batches = {"ipv4": ["route replace default via 192.168.1.100 dev eth0 table 21000 proto 201",
                        "rule add priority 21000 fwmark 0x10000/0xff0000 lookup 21000"], "ipv6": []}
    files = nat_persist.render_files({"net.ipv4.ip_forward": "1"}, "table inet netkit_egress_nat {}\n", batches,
                                     BINARIES, "/etc/netkit-egress", "/etc/systemd/system")
    assert sorted(files) == ["/etc/netkit-egress/nat_policy.ipv4", "/etc/netkit-egress/nat_policy.nft",
                             "/etc/netkit-egress/nat_policy.start", "/etc/netkit-egress/nat_policy.sysctl",
                             "/etc/systemd/system/netkit-egress-nat-policy.service"]
    assert _boot.commands(files["/etc/netkit-egress/nat_policy.start"][0]) == [
        ["/sbin/sysctl", "-q", "-p", "/etc/netkit-egress/nat_policy.sysctl"],
        ["/usr/sbin/nft", "-f", "/etc/netkit-egress/nat_policy.nft"],
        ["/sbin/ip", "-4", "-batch", "/etc/netkit-egress/nat_policy.ipv4"]]
    assert files["/etc/netkit-egress/nat_policy.ipv4"][0] == "".join(line + "\n" for line in batches["ipv4"])
    assert files["/etc/netkit-egress/nat_policy.sysctl"][0].endswith("\nnet.ipv4.ip_forward = 1\n")
    unit = files["/etc/systemd/system/netkit-egress-nat-policy.service"][0]
    assert "After=network-online.target" in unit.splitlines()
    assert set(files) <= set(nat_persist.all_paths("/etc/netkit-egress", "/etc/systemd/system"))


def test_nat_policy_without_table_or_routes_persists_nothing():
    assert nat_persist.render_files({"net.ipv4.ip_forward": "1"}, None, {"ipv4": [], "ipv6": []}, BINARIES,
                                    "/p", None) == {}
    routes_only = nat_persist.render_files({}, None, {"ipv6": ["route replace 2001:db8::/64 via 2001:db8:1::1 "
                                                               "table main proto 201"]}, BINARIES, "/p", None)
    assert _boot.commands(routes_only["/p/nat_policy.start"][0]) == [["/sbin/ip", "-6", "-batch", "/p/nat_policy.ipv6"]]


def test_floating_ip_boot_takes_each_held_address_only_when_nobody_answers_for_it():
    held = [FloatingIP("192.168.1.102", "eth0", 24), FloatingIP("2001:db8:1::100", "eth0", 64),
            FloatingIP("192.168.1.100", "eth0", 24)]
    files = floating_persist.render_files(held, "/sbin/ip", "/etc/netkit-egress", "/u")
    assert sorted(files) == ["/etc/netkit-egress/floating_ip.start", "/u/netkit-egress-floating-ip.service"]
    commands = _boot.commands(files["/etc/netkit-egress/floating_ip.start"][0])
    assert commands == _boot.commands(files["/u/netkit-egress-floating-ip.service"][0])
    assert [command[4:7] for command in commands] == [
        ["eth0", "192.168.1.100", "/sbin/ip"], ["eth0", "192.168.1.102", "/sbin/ip"],
        ["eth0", "2001:db8:1::100", "/sbin/ip"]]
    assert [" ".join(command[7:]) for command in commands] == [
        "address replace 192.168.1.100/24 dev eth0 noprefixroute label eth0:nk",
        "address replace 192.168.1.102/24 dev eth0 noprefixroute label eth0:nk",
        "address replace 2001:db8:1::100/64 dev eth0 noprefixroute nodad preferred_lft 0"]
    # systemd would expand $1 itself: the unit carries it as $$1.
    assert '"$$dev"' in files["/u/netkit-egress-floating-ip.service"][0]
    assert floating_persist.render_files([], "/sbin/ip", "/etc/netkit-egress", "/u") == {}


def _run_boot_command(tmp_path, command, probe_answers):
    """Runs one floating IP boot command with stand-ins of arping, ndisc6 and ip that log their argv."""
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    log = tmp_path / "log"
    answered = "1" if probe_answers else "0"
    for name, busy_status in (("arping", answered), ("ndisc6", "0" if probe_answers else "1"), ("ip", None)):
        status = busy_status if name != "ip" else "0"
        if name == "arping":
            # Only the duplicate-address probe (-D) depends on the segment; announcements always succeed.
            body = f'echo "{name} $*" >> {log}; case " $* " in *" -D "*) exit {status} ;; esac; exit 0'
        else:
            body = f'echo "{name} $*" >> {log}; exit {status}'
        (tools / name).write_text(f"#!/bin/sh\n{body}\n")
        (tools / name).chmod(0o755)
    argv = list(command)
    argv[6] = str(tools / "ip")
    result = subprocess.run(argv, env={"PATH": f"{tools}:/usr/bin:/bin"}, capture_output=True, text=True,
                            check=False)
    return result, (log.read_text().splitlines() if log.exists() else [])


def test_floating_ip_boot_command_leaves_an_address_another_host_answers_for(tmp_path):
    command = floating_persist.boot_command(FloatingIP("192.168.1.100", "eth0", 24), "/sbin/ip")
    result, log = _run_boot_command(tmp_path, command, probe_answers=False)
    assert result.returncode == 0
    assert log[0] == "arping -q -D -c 1 -w 1 -I eth0 192.168.1.100"
    assert log[1] == "ip address replace 192.168.1.100/24 dev eth0 noprefixroute label eth0:nk"
    assert log[2:] == ["arping -q -U -c 1 -I eth0 192.168.1.100", "arping -q -A -c 1 -I eth0 192.168.1.100"]

    busy = tmp_path / "busy"
    busy.mkdir()
    result, log = _run_boot_command(busy, command, probe_answers=True)
    assert result.returncode == 0 and "192.168.1.100 answers on eth0 from another host" in result.stderr
    assert log == ["arping -q -D -c 1 -w 1 -I eth0 192.168.1.100"]

    ipv6 = floating_persist.boot_command(FloatingIP("2001:db8:1::100", "eth0", 64), "/sbin/ip")
    six = tmp_path / "six"
    six.mkdir()
    result, log = _run_boot_command(six, ipv6, probe_answers=True)
    assert result.returncode == 0 and log == ["ndisc6 -q -1 -r 1 -w 500 2001:db8:1::100 eth0"]


def test_keepalived_starts_after_the_nat_datapath():
    from ansible_collections.netkit.egress.plugins.module_utils._vrrp_gateway.paths import Paths

    class Gateway:
        conntrack = False

    unit = vrrp_boot.render_units(Gateway(), Paths("/etc/netkit-egress/vrrp", "/run/netkit-egress", "/u"))[
        _boot.KEEPALIVED_UNIT]
    after = next(line for line in unit.splitlines() if line.startswith("After="))
    assert _boot.NAT_POLICY_UNIT in after.split("=", 1)[1].split()
