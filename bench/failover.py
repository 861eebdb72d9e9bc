# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failover figures of gateway_group_failover: vrrp (docs/failover.md), standalone.

    bench/failover.py [--repetitions 5] [--advert-interval 0.1] [--faults sigkill,sigstop,...] [--json FILE]

Builds the lab cluster in its own namespaces (nkf<pid>-*), converges it with playbooks/egress_nat.yml in VRRP
mode, then per repetition: probes from the selected pod to the server every 10 ms, one fault of the egress IP's
holder, the old holder back. Prints min/median/max of the gap (longest time without a probe arriving), the
lost probes and the split-ARP moments seen by a capture on the nodes' segment. Needs root; removes its
namespaces even on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "lab"), os.path.join(ROOT, ".venv", "collections")]

from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder  # noqa: E402

_AnsibleCollectionFinder(paths=[os.path.join(ROOT, ".venv", "collections")])._install()

import failover_lab as fl  # noqa: E402
from netlab import Lab  # noqa: E402

DEFAULT_FAULTS = ("sigkill", "sigstop", "uplink-down", "namespace-deleted", "drain")


def fresh_lab(prefix, inventory, variables):
    lab = Lab(prefix)
    lab.destroy()
    fl.build(lab)
    rc, output = fl.converge(lab, inventory, variables)
    if rc != 0:
        lab.destroy()
        raise SystemExit(f"converge failed: {fl.failures(output)}")
    return lab


def one(lab, fault, inventory, variables, workdir):
    holder = fl.wait_for_holder(lab, exclude=[g for g in fl.cluster_lab.GATEWAYS if g != "gw1"], timeout=20)
    if holder is None:
        raise SystemExit(f"gw1 did not hold the egress IP before {fault}: {fl.holders(lab)}")
    if fault == "drain":
        def drain():
            fl.converge(lab, os.path.join(workdir, "drain.yml"), variables,
                        host_vars={"gw1": {"gateway_group_drain": True}})
        figures = fl.run_fault(lab, fault, holder, seconds=30.0, action=drain)
        fl.converge(lab, inventory, variables)
        return figures
    if fault == "namespace-deleted":
        return fl.run_fault(lab, fault, holder, seconds=3.0)
    if fault == "uplink-down":
        # Back: link and default route, then a run for the return routes the link took with it.
        return fl.run_fault(lab, fault, holder, seconds=25.0, return_after=2.5,
                            reconverge=lambda: fl.converge(lab, inventory, variables))
    return fl.run_fault(lab, fault, holder, seconds=5.0, return_after=2.5)


def summary(values):
    values = [value for value in values if value is not None]
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": min(values), "median": round(statistics.median(values), 3), "max": max(values)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--advert-interval", type=float, default=0.1)
    parser.add_argument("--faults", default=",".join(DEFAULT_FAULTS))
    parser.add_argument("--json", help="write every measurement to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    # SIGTERM ends the run through the finally below, which removes the namespaces.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(1))
    prefix = f"nkf{os.getpid() % 100000}"
    variables = fl.vrrp_vars(advert_interval=args.advert_interval)
    workdir = tempfile.mkdtemp(prefix="netkit-failover-")
    inventory = os.path.join(workdir, "inventory.yml")
    rows, measurements = [], []
    lab = fresh_lab(prefix, inventory, variables)
    try:
        for fault in args.faults.split(","):
            runs = []
            for _repetition in range(args.repetitions):
                if fault == "namespace-deleted":
                    lab.destroy()
                    lab = fresh_lab(prefix, inventory, variables)
                figures = one(lab, fault, inventory, variables, workdir)
                figures.pop("fault_time", None)
                runs.append(figures)
                measurements.append(figures)
                print(json.dumps(figures), flush=True)
                time.sleep(1)
            if fault == "namespace-deleted":
                lab.destroy()
                lab = fresh_lab(prefix, inventory, variables)
            gap = summary([run["gap"] for run in runs])
            takeover = summary([run["takeover"] for run in runs])
            lost = summary([run["lost"] for run in runs])
            conflicts = sum(len(run["arp_conflicts"]) for run in runs)
            rows.append(f"| {fault} | {len(runs)} | {gap['min']} / {gap['median']} / {gap['max']} | "
                        f"{takeover['min']} / {takeover['median']} / {takeover['max']} | "
                        f"{lost['min']} / {lost['median']} / {lost['max']} | {conflicts} |")
    finally:
        lab.destroy()
    print(f"\nadvert_int {args.advert_interval} s, probes every 10 ms\n")
    print("| fault | runs | gap s (min / median / max) | takeover s (min / median / max) | "
          "lost probes (min / median / max) | split-ARP moments |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(measurements, handle, indent=2)


if __name__ == "__main__":
    main()
