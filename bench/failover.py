# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failover figures of gateway_group_failover: vrrp (docs/failover.md), standalone.

    bench/failover.py [--repetitions 5] [--advert-interval 0.1] [--faults sigkill,sigstop,...] [--json FILE]
                      [--bfd [--bfd-min-rx MS --bfd-min-tx MS --bfd-multiplier N --bfd-weight W]]
                      [--prefix PREFIX]

Builds the lab cluster in its own namespaces (nkf<pid>-*), converges it with playbooks/egress_nat.yml in VRRP
mode, then per repetition: probes from the selected pod to the server every 10 ms, one fault of the egress IP's
holder, the old holder back. Prints min/median/max of the gap (longest time without a probe arriving), the
lost probes and the split-ARP moments seen by a capture on the nodes' segment. Needs root; removes its
namespaces even on failure.

``--bfd`` measures keepalived's BFD (not a role option, see docs/failover.md "BFD"): after every converge it adds
to each gateway's keepalived.conf a ``bfd_instance`` per peer (``min_rx``/``min_tx``/``multiplier``) tracked by
every VRRP instance (``track_bfd`` with ``--bfd-weight``; 0 = unweighted: FAULT while the session is down),
and restarts keepalived with its BFD process (the role starts it with ``-P``, VRRP only).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
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
BFD = None  # the --bfd settings: {"min_rx": ms, "min_tx": ms, "multiplier": n, "weight": w}


def bfd_conf(text, own, peers, settings):
    """keepalived.conf with a bfd_instance per peer, tracked by every vrrp_instance."""
    names = {peer: "nk_bfd_" + peer.replace(".", "_") for peer in peers}
    blocks = "".join(f"bfd_instance {name} {{\n  neighbor_ip {peer}\n  source_ip {own}\n"
                     f"  min_rx {settings['min_rx']}\n  min_tx {settings['min_tx']}\n"
                     f"  multiplier {settings['multiplier']}\n  vrrp\n}}\n\n" for peer, name in names.items())
    weight = f" weight {settings['weight']}" if settings["weight"] else ""
    track = "  track_bfd {\n" + "".join(f"    {name}{weight}\n" for name in names.values()) + "  }\n"
    text = text.replace("\nvrrp_track_file ", "\n" + blocks + "vrrp_track_file ", 1)
    return text.replace("  track_file {\n", track + "  track_file {\n")


def enable_bfd(lab):
    """Add BFD to the rendered keepalived.conf of every gateway and restart keepalived with its BFD process."""
    if BFD is None:
        return
    addresses = fl.cluster_lab.GATEWAYS
    for gateway, own in addresses.items():
        base = os.path.join("/etc/netns", lab.ns(gateway), "netkit-egress", "vrrp")
        conf = os.path.join(base, "keepalived.conf")
        with open(conf) as handle:
            text = handle.read()
        if "bfd_instance" not in text:
            with open(conf, "w") as handle:
                handle.write(bfd_conf(text, own, [a for g, a in addresses.items() if g != gateway], BFD))
        start = os.path.join(base, "start")
        with open(start) as handle:
            program = handle.read()
        with open(start, "w") as handle:
            handle.write(program.replace("keepalived -P -n", f"keepalived -b {fl.RUN_DIR}/keepalived-bfd.pid -n"))
        lab.host_exec(gateway, [os.path.join(fl.CONFIG_DIR, "stop")], check=False, timeout=30)
        fl.boot(lab, gateway)
    time.sleep(3)


def converge(lab, inventory, variables, host_vars=None):
    rc, output = fl.converge(lab, inventory, variables, host_vars=host_vars)
    enable_bfd(lab)
    return rc, output


def fresh_lab(prefix, inventory, variables):
    lab = Lab(prefix)
    lab.destroy()
    fl.build(lab)
    rc, output = converge(lab, inventory, variables)
    if rc != 0:
        lab.destroy()
        raise SystemExit(f"converge failed: {fl.failures(output)}")
    return lab


def one(lab, fault, inventory, variables, workdir, advert_interval=0.1):
    holder = fl.wait_for_holder(lab, exclude=[g for g in fl.cluster_lab.GATEWAYS if g != "gw1"], timeout=20)
    if holder is None:
        raise SystemExit(f"gw1 did not hold the egress IP before {fault}: {fl.holders(lab)}")
    if fault == "drain":
        def drain():
            converge(lab, os.path.join(workdir, "drain.yml"), variables,
                     host_vars={"gw1": {"gateway_group_drain": True}})
        figures = fl.run_fault(lab, fault, holder, seconds=30.0, action=drain)
        converge(lab, inventory, variables)
        return figures
    # The old holder comes back only after the takeover (about 3.3 adverts).
    back = max(2.5, 5 * advert_interval)
    if fault == "namespace-deleted":
        return fl.run_fault(lab, fault, holder, seconds=max(3.0, back))
    if fault == "uplink-down":
        # Back: link and default route, then a run for the return routes the link took with it.
        return fl.run_fault(lab, fault, holder, seconds=22.5 + back, return_after=back,
                            reconverge=lambda: converge(lab, inventory, variables))
    return fl.run_fault(lab, fault, holder, seconds=2.5 + back, return_after=back)


HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def keepalived_log(lab, gateway):
    return lab.host_exec(gateway, ["cat", f"{fl.RUN_DIR}/keepalived.log"], check=False).stdout.splitlines()


def false_failovers(lab, seconds, hogs):
    """VRRP transitions and BFD session changes while nothing fails, with ``hogs`` CPU-bound processes (bounded
    in time, stopped by pid) loading the machine: every one of them is a false failover (or its undoing)."""
    marks = {gateway: len(keepalived_log(lab, gateway)) for gateway in fl.cluster_lab.GATEWAYS}
    holders_before = fl.holders(lab)
    procs = [subprocess.Popen([sys.executable, "-c", HOG.format(seconds=seconds)]) for _index in range(hogs)]
    try:
        time.sleep(seconds)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=10)
    time.sleep(2)
    counts = {}
    for gateway, mark in marks.items():
        lines = keepalived_log(lab, gateway)[mark:]
        counts[gateway] = {
            "transitions": sum(1 for line in lines if "Entering MASTER STATE" in line or "Entering BACKUP STATE" in line
                               or "Entering FAULT STATE" in line),
            "became_master": sum(1 for line in lines if "Entering MASTER STATE" in line),
            "bfd_down": sum(1 for line in lines if "BFD" in line and "DOWN" in line),
        }
    return {"seconds": seconds, "hogs": hogs, "holders_before": holders_before, "holders_after": fl.holders(lab),
            "per_gateway": counts}


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
    parser.add_argument("--prefix", default=f"nkf{os.getpid() % 100000}", help="namespace prefix (<= 8 chars)")
    parser.add_argument("--false-failovers", type=float, metavar="SECONDS",
                        help="instead of faults: count VRRP transitions for SECONDS with the machine loaded")
    parser.add_argument("--hogs", type=int, default=2, help="CPU-bound processes for --false-failovers")
    parser.add_argument("--bfd", action="store_true", help="add keepalived BFD sessions between the gateways")
    parser.add_argument("--bfd-min-rx", type=float, default=10.0, help="ms")
    parser.add_argument("--bfd-min-tx", type=float, default=10.0, help="ms")
    parser.add_argument("--bfd-multiplier", type=int, default=3)
    parser.add_argument("--bfd-weight", type=int, default=0,
                        help="track_bfd weight (0: unweighted, the instance is in FAULT while the session is down)")
    args = parser.parse_args()
    global BFD
    if args.bfd:
        BFD = {"min_rx": args.bfd_min_rx, "min_tx": args.bfd_min_tx, "multiplier": args.bfd_multiplier,
               "weight": args.bfd_weight}
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    # SIGTERM ends the run through the finally below, which removes the namespaces.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(1))
    prefix = args.prefix
    variables = fl.vrrp_vars(advert_interval=args.advert_interval)
    workdir = tempfile.mkdtemp(prefix="netkit-failover-")
    inventory = os.path.join(workdir, "inventory.yml")
    rows, measurements = [], []
    lab = fresh_lab(prefix, inventory, variables)
    if args.false_failovers:
        try:
            time.sleep(5)
            print(json.dumps(false_failovers(lab, args.false_failovers, args.hogs)), flush=True)
        finally:
            lab.destroy()
        return
    try:
        for fault in args.faults.split(","):
            runs = []
            for _repetition in range(args.repetitions):
                if fault == "namespace-deleted":
                    lab.destroy()
                    lab = fresh_lab(prefix, inventory, variables)
                figures = one(lab, fault, inventory, variables, workdir, args.advert_interval)
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
    bfd = (f", BFD min_rx {args.bfd_min_rx} ms min_tx {args.bfd_min_tx} ms multiplier {args.bfd_multiplier} "
           f"weight {args.bfd_weight}") if args.bfd else ""
    print(f"\nadvert_int {args.advert_interval} s{bfd}, probes every 10 ms\n")
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
