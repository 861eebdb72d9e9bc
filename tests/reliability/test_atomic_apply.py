# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 4, item 2: an apply that fails half way leaves the host byte-identical to before, and the
error says what failed.

Faults are injected at the lowest layer, with the module code unchanged: the module worker swaps one
host binary for a wrapper (``binaries``). The wrappers pass every read and every check (``nft -c``,
``iptables-restore --test``) to the real binary, and on apply either hand the real kernel something it
rejects (nft: the script plus a rule for a missing table, one transaction, refused whole;
iptables-restore: the file with a bad jump in its last table, so its first table commits and the last
does not), stop ``ip -batch`` after N lines the kernel really applied, or are killed with SIGKILL.
"""

import pytest

import harness
from scenarios import FLOATING_ARGS, NAT_SOURCE_ARGS, ROUTES_ARGS, egress_gateway_args

OTHER_NETWORKS = [{"name": "net-c", "cidr": ["10.100.0.0/24", "fd00:100::/64"],
                   "ranges": ["192.168.50.0/26", "2001:db8:50::/66"]}]


def wrapper(kind, tmp_path):
    if kind == "nft rejected":
        return {"nft": harness.nft_rejecting_wrapper(tmp_path)}
    if kind == "nft killed":
        return {"nft": harness.killed_wrapper(tmp_path, "nft", "/usr/sbin/nft")}
    if kind.startswith("ip6tables-") and kind.endswith(" rejected"):
        name = kind.split()[0]
        return {name: harness.iptables_rejecting_wrapper(tmp_path, name, f"/usr/sbin/{name}")}
    if kind.startswith("ip") and kind.endswith(" killed"):
        name = kind.split()[0]
        return {name: harness.killed_wrapper(tmp_path, name, f"/usr/sbin/{name}")}
    if kind.startswith("ip -batch fails after "):
        return {"ip": harness.ip_batch_failing_wrapper(tmp_path, int(kind.split()[-2]))}
    raise ValueError(kind)


CASES = [
    # (subject, host, module, converged args, changed args, fault, words the error must contain)
    ("egress_gateway nftables", "gw", "egress_gateway", egress_gateway_args(),
     egress_gateway_args(networks=OTHER_NETWORKS), "nft rejected", ["applying nftables failed", "rolled back"]),
    ("egress_gateway nftables", "gw", "egress_gateway", egress_gateway_args(),
     egress_gateway_args(networks=OTHER_NETWORKS), "nft killed", ["applying nftables failed", "rc=-9"]),
    ("egress_gateway iptables-nft", "gw", "egress_gateway", egress_gateway_args("iptables", "nft"),
     egress_gateway_args("iptables", "nft", networks=OTHER_NETWORKS), "ip6tables-nft-restore rejected",
     ["applying iptables-nft ipv6 failed", "rolled back"]),
    ("egress_gateway iptables-legacy", "gw", "egress_gateway", egress_gateway_args("iptables", "legacy"),
     egress_gateway_args("iptables", "legacy", networks=OTHER_NETWORKS), "ip6tables-legacy-restore rejected",
     ["applying iptables-legacy ipv6 failed", "rolled back"]),
    ("egress_gateway iptables-legacy", "gw", "egress_gateway", egress_gateway_args("iptables", "legacy"),
     egress_gateway_args("iptables", "legacy", networks=OTHER_NETWORKS), "ip6tables-legacy-restore killed",
     ["applying iptables-legacy ipv6 failed", "rc=-9"]),
    # (iptables-nft creates empty built-in chains on first use that no iptables command removes:
    # the switch is proven with the legacy variant; docs/reliability.md lists the nft variant's leftover.)
    ("egress_gateway backend switch", "gw", "egress_gateway", egress_gateway_args(),
     egress_gateway_args("iptables", "legacy"), "ip6tables-legacy-restore rejected",
     ["applying iptables-legacy ipv6 failed", "rolled back"]),
    ("egress_routes", "gw", "egress_routes", ROUTES_ARGS,
     {"routes": [{"destination": "198.51.100.0/24", "via": "10.100.0.3"},
                 {"destination": "203.0.113.0/24", "via": "10.100.0.2"},
                 {"destination": "2001:db8:99::/64", "via": "fd00:100::3"}], "state": "exact"},
     "ip -batch fails after 2 lines", ["injected", "rolled back"]),
    ("floating_ip", "gw", "floating_ip", FLOATING_ARGS,
     dict(FLOATING_ARGS, addresses=["192.168.1.100", "192.168.1.102", "2001:db8:1::100"]),
     "ip -batch fails after 1 lines", ["injected", "rolled back"]),
    ("nat_policy source", "nb", "nat_policy", NAT_SOURCE_ARGS,
     dict(NAT_SOURCE_ARGS, config=NAT_SOURCE_ARGS["config"] + [
         {"name": "pol-b", "egress_ip": "192.168.1.101", "sources": ["10.10.2.0/24"],
          "destinations": ["203.0.113.0/24"]}]),
     "nft rejected", ["netkit_no_such_table", "rolled back"]),
    ("nat_policy source", "nb", "nat_policy", NAT_SOURCE_ARGS,
     dict(NAT_SOURCE_ARGS, config=NAT_SOURCE_ARGS["config"] + [
         {"name": "pol-b", "egress_ip": "192.168.1.101", "sources": ["10.10.2.0/24"],
          "destinations": ["203.0.113.0/24"]}]),
     "nft killed", ["rc=-9", "rolled back"]),
    ("nat_policy source", "nb", "nat_policy", NAT_SOURCE_ARGS,
     dict(NAT_SOURCE_ARGS, config=NAT_SOURCE_ARGS["config"][1:]),  # the IPv6 policy goes: removals fail
     "ip -batch fails after 0 lines", ["injected", "rolled back"]),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{case[0]}: {case[5]}" for case in CASES])
def test_failed_apply_leaves_host_as_it_was(topo, workers, tmp_path, case):
    subject, host, module, converged_args, changed_args, fault, words = case
    lab, worker = topo, workers(host)
    first = worker.run(module, converged_args)
    assert first.get("changed") and not first.get("failed"), first
    before = harness.snapshot(lab, host)
    # The change itself is valid: the check run predicts a change and succeeds.
    predicted = worker.run(module, changed_args, check=True)
    assert predicted.get("changed") and not predicted.get("failed"), predicted

    result = worker.run(module, changed_args, binaries=wrapper(fault, tmp_path))
    after = harness.snapshot(lab, host)
    differences = harness.changed_parts(before, after)
    message = result.get("msg", "")
    ok = bool(result.get("failed")) and not differences and all(word in message for word in words)
    harness.record("2 atomic apply (fault injected, host unchanged)", f"{subject}: {fault}", 1, int(ok),
                   int(bool(differences)))
    assert result.get("failed"), result
    assert not differences, {key: (before[key], after[key]) for key in differences}
    assert all(word in message for word in words), message
    # Without the fault the same change applies, and the next run has nothing to do.
    assert worker.run(module, changed_args).get("changed") is True
    assert worker.run(module, changed_args, check=True).get("changed") is False
