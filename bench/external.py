# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Figures measured by standalone scripts, as rows of ``./run bench``: the WireGuard tunnel (bench/wireguard.py)
and the VRRP failover gaps (bench/failover.py). Each script builds and removes its own namespaces; here it runs
as a child process and its JSON output becomes rows (median, min, max over the repetitions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from common import HERE, summary

PLAIN = "plain veth forwarding (a -> r -> b)"
TUNNEL = "WireGuard tunnel, wireguard-go (same path)"
FAULTS = ("sigkill", "sigstop", "uplink-down", "namespace-deleted", "drain")


def _run_script(bench, name, extra, timeout):
    path = os.path.join(bench.tmp, f"{name}.json")
    subprocess.run([sys.executable, os.path.join(HERE, f"{name}.py")] + extra + ["--json", path],
                   check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    with open(path) as handle:
        return json.load(handle)


def figure_wireguard(bench):
    """One TCP stream through a wireguard-go tunnel beside the same path in clear (veth forwarding)."""
    figures = _run_script(bench, "wireguard", ["--reps", str(bench.reps), "--seconds", "3" if bench.quick else "5"],
                          timeout=1200)
    plain, tunnel = figures[PLAIN], figures[TUNNEL]
    bench.row("wireguard", "TCP, plain veth forwarding", summary(plain), "Gbit/s")
    bench.row("wireguard", "TCP through the WireGuard tunnel (wireguard-go, userspace)", summary(tunnel), "Gbit/s",
              baseline=summary(plain), ratio=summary([t / p for t, p in zip(tunnel, plain) if p]),
              note="ratio: tunnel / plain, pair by pair")


def figure_failover(bench):
    """The longest time without a probe (every 10 ms) from a selected pod, per fault, advert_int 0.1 s."""
    repetitions = 1 if bench.quick else max(bench.reps, 5)
    measurements = _run_script(bench, "failover", ["--repetitions", str(repetitions), "--faults", ",".join(FAULTS)],
                               timeout=3600)
    for fault in FAULTS:
        runs = [run for run in measurements if run.get("fault") == fault]
        target = 0.0 if fault == "drain" else 0.5
        gaps = summary([run.get("gap") for run in runs])
        lost = summary([run.get("lost") for run in runs])
        conflicts = sum(len(run.get("arp_conflicts") or []) for run in runs)
        wanted = "0 lost probes" if fault == "drain" else f"a gap under {target} s"
        bench.row("failover", f"gap after {fault} (advert_int 0.1 s)", gaps, "s",
                  note=f"issue 12 wants {wanted}; lost probes {lost['median'] if lost else '-'} (median); "
                       f"{conflicts} split-ARP moments")
