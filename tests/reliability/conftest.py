# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reliability tests: one small topology that every module can run on, and the figures file.

    m1 10.100.0.2 ---- nm0 10.100.0.1/24  [gw]  eth1 192.168.50.1/24 ---- srv 192.168.50.10
       fd00:100::2          fd00:100::1/64         2001:db8:50::1/64        2001:db8:50::10
                                          eth0 192.168.1.11/24 ---- nb 192.168.1.1 (a cluster node)
                                               2001:db8:1::11/64        2001:db8:1::1

gw is where egress_gateway, egress_routes, floating_ip and nat_policy (role gateway) run; nb runs
nat_policy with role source (its egress IP is a floating IP on gw).
"""

import json

import pytest

import harness


def build_topology(lab):
    for host in ("gw", "m1", "srv", "nb"):
        lab.add_host(host)
    lab.link("m1", "eth0", "gw", "nm0")
    lab.link("gw", "eth1", "srv", "eth0")
    lab.link("gw", "eth0", "nb", "eth0")
    for host, ifname, v4, v6 in (("gw", "nm0", "10.100.0.1/24", "fd00:100::1/64"),
                                 ("m1", "eth0", "10.100.0.2/24", "fd00:100::2/64"),
                                 ("gw", "eth1", "192.168.50.1/24", "2001:db8:50::1/64"),
                                 ("srv", "eth0", "192.168.50.10/24", "2001:db8:50::10/64"),
                                 ("gw", "eth0", "192.168.1.11/24", "2001:db8:1::11/64"),
                                 ("nb", "eth0", "192.168.1.1/24", "2001:db8:1::1/64")):
        lab.addr(host, ifname, v4)
        lab.addr(host, ifname, v6)
    lab.route("m1", "192.168.50.0/24", via="10.100.0.1")
    lab.route("m1", "2001:db8:50::/64", via="fd00:100::1")
    return lab


@pytest.fixture
def topo(lab):
    return build_topology(lab)


@pytest.fixture
def workers(lab):
    """``workers(host)``: a module worker inside that host (one per host, closed at the end)."""
    started = {}

    def get(host):
        if host not in started:
            started[host] = harness.ModuleWorker(lab, host)
        return started[host]

    yield get
    for worker in started.values():
        worker.close()


def pytest_sessionfinish(session, exitstatus):
    """tests/output/reliability.json (the figures) and reliability.md (their table) after every run."""
    harness.write_figures()
    if harness.FIGURES:
        import report

        with open(harness.FIGURES_PATH) as handle:
            rows = json.load(handle)["rows"]
        with open(harness.FIGURES_PATH.replace(".json", ".md"), "w") as handle:
            handle.write(report.table(rows))
