# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every benchmark figure needs (bench.py and fleet_nat.py import this file, never each other): the
lab on the import path, statistics of repeated runs, files in the bench's scratch directory, timed
ansible-playbook runs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LAB_DIR = os.path.join(REPO, "lab")
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

import netlab  # noqa: E402


def summary(values):
    values = [value for value in values if value is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def write_yaml(bench, name, data):
    import yaml

    path = os.path.join(bench.tmp, name)
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle, sort_keys=False)
    return path


def playbook_seconds(playbook, inventory, forks=10, extra_env=None):
    env = netlab.ansible_env(dict({"ANSIBLE_FORKS": str(forks), "ANSIBLE_PIPELINING": "True"}, **(extra_env or {})))
    start = time.perf_counter()
    proc = subprocess.run([netlab.ansible_bin("ansible-playbook"), "-i", inventory, playbook], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=1800, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"ansible-playbook {playbook} failed: {(proc.stdout + proc.stderr)[-2000:]}")
    return elapsed, proc.stdout


def iperf(lab, client, server_address, udp, seconds):
    """Gbit/s of one TCP stream, or packets/s received of UDP with a 64-byte payload at unlimited rate, from
    ``client`` to an ``iperf3 -s`` at ``server_address``. Client on CPU 0 (the server is started on CPU 1):
    less scheduler noise between configurations. TCP omits its first second (-O 1: slow start); iperf3's
    end summary leaves omitted intervals out."""
    argv = ["taskset", "-c", "0", "iperf3", "-c", server_address, "-t", str(seconds), "-J"]
    argv += ["-u", "-b", "0", "-l", "64"] if udp else ["-O", "1"]
    for attempt in range(3):
        proc = subprocess.run(["ip", "netns", "exec", lab.ns(client)] + argv, capture_output=True, text=True,
                              timeout=seconds + 30, check=False)
        output = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
        # On a loaded machine the single-client server is now and then still closing the previous test
        # ("the server is busy") or loses the results exchange: such a run measured nothing; try again.
        if proc.returncode == 0 and "error" not in output:
            break
        if attempt == 2:
            detail = output.get("error") or (proc.stdout + proc.stderr)[-800:]
            raise RuntimeError(f"iperf3 in {client} failed: {detail}")
        time.sleep(1)
    report = output["end"]
    if udp:
        total = report["sum"]
        return (total["packets"] - total["lost_packets"]) / total["seconds"]
    return report["sum_received"]["bits_per_second"] / 1e9


def start_iperf_server(lab, host):
    """``iperf3 -s`` in ``host`` on CPU 1, stopped with the lab."""
    proc = subprocess.Popen(["ip", "netns", "exec", lab.ns(host), "taskset", "-c", str(min(1, os.cpu_count() - 1)),
                             "iperf3", "-s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lab._servers.append(proc)
    time.sleep(0.5)
    return proc
