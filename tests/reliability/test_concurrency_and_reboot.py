# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 4, items 6 and 7.

Concurrency: every module takes the host lock (``HostLock``, one flock per network namespace) around
its read-decide-apply: while another process holds the lock, the module waits; two runs started at
once on one host are serialized, exactly one of them reports a change, and the host then is what one
run makes (a check run has nothing left to do; no jump rule twice).

Reboot: with ``persist: true`` the egress gateway writes a boot unit. A reboot is simulated by flushing
the namespace's rulesets (nftables and both iptables variants), destroying its ipset sets and turning
forwarding off; running exactly
the unit's ExecStart= lines brings back a byte-identical host, and the next run reports no change.
floating_ip and nat_policy without ``persist`` (their default; the roles persist, proven by the playbook
tests' reboot of every host): after the same flush the next Ansible run restores them and says so (changed).
"""

import subprocess
import time

import pytest

import harness
from scenarios import SCENARIOS, egress_gateway_args

from ansible_collections.netkit.egress.plugins.module_utils import _boot
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway import persist

HOLD_SECONDS = 1.5
LOCK_HOLDER = """
import fcntl, sys, time
sys.path.insert(0, {collections!r})
from ansible_collections.netkit.egress.plugins.module_utils._host import namespace_lock_path
handle = open(namespace_lock_path(), "a")
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep({seconds})
"""
CONCURRENT = [scenario for scenario in SCENARIOS if scenario[0] != "egress_gateway iptables-legacy"]


@pytest.mark.parametrize("scenario", CONCURRENT, ids=[scenario[0] for scenario in CONCURRENT])
def test_two_runs_at_once_are_serialized(topo, tmp_path, workers, scenario):
    name, host, module, args, _drifts = scenario
    lab = topo
    # 1. The module waits for a lock holder.
    holder = subprocess.Popen(["ip", "netns", "exec", lab.ns(host), harness.PYTHON, "-c",
                               LOCK_HOLDER.format(collections=harness.COLLECTIONS, seconds=HOLD_SECONDS)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    waited = harness.module_result(harness.start_module_process(lab, host, module, args, tmp_path, "waiting"))
    elapsed = time.monotonic() - started
    holder.wait(timeout=10)
    waits = elapsed >= HOLD_SECONDS * 0.8 and not waited.get("failed")
    # 2. Two runs at once (after taking the host back to empty with the module's own removal).
    undo = {"egress_gateway": dict(args, state="absent"), "egress_routes": dict(args, routes=[]),
            "floating_ip": dict(args, addresses=[]), "nat_policy": dict(args, state="deleted", config=[])}[module]
    workers(host).run(module, undo)
    empty = harness.snapshot(lab, host)
    first = harness.start_module_process(lab, host, module, args, tmp_path, "first")
    second = harness.start_module_process(lab, host, module, args, tmp_path, "second")
    results = [harness.module_result(first), harness.module_result(second)]
    again = workers(host).run(module, args, check=True)
    serialized = (not any(result.get("failed") for result in results)
                  and sorted(bool(result.get("changed")) for result in results) == [False, True]
                  and again.get("changed") is False and harness.snapshot(lab, host) != empty)
    harness.record("6 concurrency (lock held: waits; two runs at once = one run)", name, 2,
                   int(waits) + int(serialized))
    assert waits, (elapsed, waited)
    assert serialized, (results, again)


REBOOTED = "; ".join([
    "nft flush ruleset",
    *(f"{binary} -t {table} -F; {binary} -t {table} -X"
      for binary in ("iptables-legacy", "ip6tables-legacy") for table in ("filter", "nat")),
    "ipset destroy 2>/dev/null || true",  # sets live in the kernel only: a reboot loses them too
    "sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0",
])
PERSIST_PATHS = {"persist_dir": "/etc/netkit-egress", "sysctl_dir": "/etc/netkit-egress/sysctl.d",
                 "systemd_unit_dir": "/etc/netkit-egress/systemd"}


@pytest.mark.parametrize("backend,variant", [("nftables", "auto"), ("iptables", "nft"), ("iptables", "legacy")])
def test_boot_unit_restores_everything(topo, workers, backend, variant):
    lab, worker = topo, workers("gw")
    args = egress_gateway_args(backend, variant, persist=True, **PERSIST_PATHS)
    assert worker.run("egress_gateway", args).get("changed")
    before = harness.snapshot(lab, "gw")
    lab.sh("gw", REBOOTED)
    assert harness.snapshot(lab, "gw") != before
    unit = lab.sh("gw", f"cat {PERSIST_PATHS['systemd_unit_dir']}/{persist.UNIT_FILE}").stdout
    for argv in _boot.commands(unit):
        lab.exec("gw", argv)
    after = harness.snapshot(lab, "gw")
    again = worker.run("egress_gateway", args, check=True)
    ok = after == before and again.get("changed") is False
    harness.record("7 reboot (boot unit restores, next run no change)", f"egress_gateway {backend} {variant}", 1,
                   int(ok), 0)
    assert after == before, harness.changed_parts(before, after)
    assert again.get("changed") is False


# A reboot also takes the floating IPs, our ip rules and our routes.
REBOOTED_WITH_ADDRESSES = (REBOOTED + "; ip -4 addr flush dev eth0 label eth0:nk; "
                           "ip -6 addr del 2001:db8:1::100/64 dev eth0 2>/dev/null; "
                           "for f in -4 -6; do ip $f rule show | cut -d: -f1 | grep -vxE '0|32766|32767' "
                           "| while read p; do ip $f rule del priority $p; done; done; "
                           "ip route flush table all proto 201; ip -6 route flush table all proto 201; true")


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s[2] in ("floating_ip", "nat_policy")],
                         ids=lambda scenario: scenario[0])
def test_no_persistence_next_run_restores(topo, workers, scenario):
    name, host, module, args, _drifts = scenario
    lab, worker = topo, workers(host)
    assert worker.run(module, args).get("changed")
    before = harness.snapshot(lab, host)
    lab.sh(host, REBOOTED_WITH_ADDRESSES)
    assert harness.snapshot(lab, host) != before
    restored = worker.run(module, args)
    after = harness.snapshot(lab, host)
    ok = restored.get("changed") is True and after == before
    harness.record("7 reboot without persist: next run restores", name, 1, int(ok))
    assert restored.get("changed") is True
    assert after == before, harness.changed_parts(before, after)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s[2] in ("floating_ip", "nat_policy")],
                         ids=lambda scenario: scenario[0])
def test_boot_program_restores_everything(topo, workers, scenario):
    """With ``persist``: the same reboot, then only the start program's commands: the host is identical to
    before (files included), and the next run reports no change."""
    name, host, module, args, _drifts = scenario
    lab, worker = topo, workers(host)
    args = dict(args, persist=True)
    assert worker.run(module, args).get("changed")
    before = harness.snapshot(lab, host)
    lab.sh(host, REBOOTED_WITH_ADDRESSES)
    assert harness.snapshot(lab, host) != before
    program = f"/etc/netkit-egress/{module}.start"
    for argv in _boot.commands(lab.sh(host, f"cat {program}").stdout):
        lab.exec(host, argv)
    after = harness.snapshot(lab, host)
    again = worker.run(module, args, check=True)
    ok = after == before and again.get("changed") is False
    harness.record("7 reboot (boot program restores, next run no change)", name, 1, int(ok))
    assert after == before, harness.changed_parts(before, after)
    assert again.get("changed") is False
