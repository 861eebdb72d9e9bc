# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 4, items 3 and 8 (traffic through a foreign drop).

Hosts are pre-seeded with what real gateways and nodes have: docker (iptables-nft: FORWARD policy
DROP, DOCKER-USER, DOCKER chains, a nat MASQUERADE, both families), a firewalld-like ``inet firewalld``
table, Debian's stock ``inet filter`` table, legacy iptables rules in both families, a foreign route,
ip rule and address. After every module's apply, everything foreign is byte-identical (our own
objects taken out of the view); after the module's removal the whole host is byte-identical to the
seeded host (forwarding sysctls aside: the egress gateway leaves them on purpose).

Through docker's FORWARD policy DROP the supported way is the egress gateway's own accept in the
iptables variant docker uses (``backend: auto`` picks it): egress works; with ``backend: nftables``
forced the same host drops it, which is why ``auto`` never picks nftables there.
"""

import json
import re

import pytest

import harness
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy.model import Numbering
from scenarios import SCENARIOS, egress_gateway_args

SEED_COMMANDS = [
    "iptables-nft -P FORWARD DROP",
    "iptables-nft -N DOCKER",
    "iptables-nft -N DOCKER-USER",
    "iptables-nft -A DOCKER-USER -j RETURN",
    "iptables-nft -A FORWARD -j DOCKER-USER",
    "iptables-nft -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "iptables-nft -A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
    "iptables-nft -t nat -N DOCKER",
    "iptables-nft -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
    "ip6tables-nft -P FORWARD DROP",
    "ip6tables-nft -N DOCKER-USER",
    "ip6tables-nft -A FORWARD -j DOCKER-USER",
    "ip6tables-nft -t nat -A POSTROUTING -s fd00:dead::/64 -j MASQUERADE",
    "iptables-legacy -A INPUT -s 198.18.0.0/15 -j ACCEPT",
    "ip6tables-legacy -A INPUT -s 2001:db8:ff::/48 -j ACCEPT",
    "ip route add 203.0.113.0/24 via 192.168.1.1 proto static",
    "ip rule add priority 100 from 10.99.0.0/16 lookup main",
    "ip addr add 192.168.1.50/24 dev eth0",
]
SEED_NFT = """\
table inet firewalld {
  chain filter_FORWARD { type filter hook forward priority filter + 10; policy accept; ct state established,related accept; }
  chain filter_INPUT { type filter hook input priority filter + 10; policy accept; iifname "lo" accept; }
}
table inet filter {
  chain input { type filter hook input priority filter; policy accept; }
  chain forward { type filter hook forward priority filter; policy accept; }
  chain output { type filter hook output priority filter; policy accept; }
}
"""
OUR_TABLE_BLOCK = re.compile(r"(?ms)^table inet netkit_egress(_nat)? \{.*?^\}\n?")
OUR_CHAIN_BLOCK = re.compile(r"(?ms)^\tchain NETKIT-[^\n]*\{.*?^\t\}\n")
FLOATING = {"192.168.1.100", "192.168.1.101", "2001:db8:1::100"}
REMOVAL = {"egress_gateway": {"state": "absent"}, "egress_routes": {"routes": []}, "floating_ip": {"addresses": []},
           "nat_policy": {"state": "deleted", "config": []}}


NAT_POLICY_NUMBERING = Numbering()  # the default priorities nat_policy owns (its slot rules and their tree)


def seed(lab, host):
    """Only ever inside the test's namespace (lab.exec/lab.sh prefix ``ip netns exec``)."""
    for command in SEED_COMMANDS:
        lab.exec(host, command.split())
    lab.exec(host, ["nft", "-f", "-"], data=SEED_NFT)


def our_table(route):
    table = str(route.get("table", "main"))
    return table.isdigit() and 21000 <= int(table) < 21100


def foreign_view(parts):
    """The snapshot without what the collection owns."""
    view = dict(parts)
    nft = OUR_CHAIN_BLOCK.sub("", OUR_TABLE_BLOCK.sub("", parts["nft"]))
    view["nft"] = "\n".join(line for line in nft.splitlines() if "NETKIT" not in line and line.strip())
    for label in ("iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy"):
        view[label] = "\n".join(line for line in parts[label].splitlines() if "NETKIT" not in line)
    # The ipset sets the iptables backend matches ranges with are ours too.
    view["ipset"] = "\n".join(line for line in parts.get("ipset", "").splitlines() if " netkit-egress-" not in line)
    for label in ("route4", "route6"):
        # Local-table routes of our floating IPs are the kernel's consequence of our addresses.
        view[label] = [route for route in json.loads(parts[label] or "[]")
                       if route.get("protocol") != "201" and not our_table(route) and route.get("dst") not in FLOATING]
    for label in ("rule4", "rule6"):
        view[label] = [rule for rule in json.loads(parts[label] or "[]")
                       if not NAT_POLICY_NUMBERING.rule_priority_base <= rule.get("priority", 0)
                       <= NAT_POLICY_NUMBERING.end_priority]
    view["addr"] = [[info for info in link.get("addr_info", []) if info.get("local") not in FLOATING]
                    for link in json.loads(parts["addr"])]
    for label in ("sysctl", "files"):
        view.pop(label)
    return without_forwarding_effects(view)


def without_forwarding_effects(view):
    """IPv6 subnet-router anycast routes appear when forwarding is on: the kernel's consequence of the
    forwarding sysctl (which the egress gateway deliberately leaves on at removal), not a foreign object."""
    view = dict(view)
    routes = view["route6"] if isinstance(view["route6"], list) else json.loads(view["route6"] or "[]")
    view["route6"] = [route for route in routes if route.get("type") != "anycast"]
    return view


def differences(before, after):
    return {key: (before[key], after[key]) for key in harness.changed_parts(before, after)}


COEXISTING = [scenario for scenario in SCENARIOS if "iptables" not in scenario[0]]


@pytest.mark.parametrize("scenario", COEXISTING, ids=[s[0].replace(" nftables", " backend auto") for s in COEXISTING])
def test_foreign_state_untouched(topo, workers, scenario):
    name, host, module, args, _drifts = scenario
    lab, worker = topo, workers(host)
    if module == "egress_gateway":
        name, args = "egress_gateway backend auto", dict(args, backend="auto")
    seed(lab, host)
    seeded = harness.snapshot(lab, host)
    policies = harness.chain_policies(seeded)
    applied = worker.run(module, args)
    assert applied.get("changed") and not applied.get("failed"), applied
    after_apply = harness.snapshot(lab, host)
    removed = worker.run(module, dict(args, **REMOVAL[module]))
    after_removal = harness.snapshot(lab, host)
    kept_on_apply = foreign_view(after_apply) == foreign_view(seeded)
    seeded_view, removal_view = dict(seeded), dict(after_removal)
    for label in ("sysctl", "files"):
        seeded_view.pop(label)
        removal_view.pop(label)
    seeded_view, removal_view = without_forwarding_effects(seeded_view), without_forwarding_effects(removal_view)
    same_after_removal = removal_view == seeded_view
    changed_policies = harness.policies_changed(policies, harness.chain_policies(after_apply)) + \
        harness.policies_changed(policies, harness.chain_policies(after_removal))
    harness.record("3 coexistence (foreign state identical after apply and removal)", name, 2,
                   int(kept_on_apply) + int(same_after_removal), int(not kept_on_apply) + int(not same_after_removal))
    harness.record("8 chain policies unchanged", f"{name} on a docker/firewalld host", 1, int(not changed_policies),
                   len(changed_policies))
    if module == "egress_gateway":
        assert applied["backend"] == "iptables" and applied["iptables_variant"] == "nft", applied["backend_reason"]
    assert removed.get("changed") and not removed.get("failed"), removed
    assert kept_on_apply, differences(foreign_view(seeded), foreign_view(after_apply))
    assert same_after_removal, differences(seeded_view, removal_view)
    assert not changed_policies


def test_egress_through_docker_forward_drop(topo, workers):
    lab, worker = topo, workers("gw")
    seed(lab, "gw")
    lab.sysctl("gw", "net.ipv4.ip_forward", 1)
    lab.sysctl("gw", "net.ipv6.conf.all.forwarding", 1)
    lab.start_whoami("srv", 8080)
    before = lab.whoami("m1", "192.168.50.10", timeout=1.5)
    auto = worker.run("egress_gateway", egress_gateway_args("auto"))
    through_auto = lab.whoami("m1", "192.168.50.10")
    through_auto6 = lab.whoami("m1", "2001:db8:50::10")
    worker.run("egress_gateway", egress_gateway_args("auto", state="absent"))
    forced = worker.run("egress_gateway", egress_gateway_args("nftables"))
    through_nft = lab.whoami("m1", "192.168.50.10", timeout=1.5)
    ok = (before is None and auto.get("backend") == "iptables" and through_auto == "192.168.50.1"
          and through_auto6 == "2001:db8:50::1" and forced.get("backend") == "nftables" and through_nft is None)
    harness.record("3 coexistence (foreign state identical after apply and removal)",
                   "egress through docker's FORWARD DROP (backend auto)", 1, int(ok))
    assert before is None  # docker's policy drops it before we start (forwarding on)
    assert auto["backend"] == "iptables" and auto["iptables_variant"] == "nft", auto["backend_reason"]
    assert (through_auto, through_auto6) == ("192.168.50.1", "2001:db8:50::1")
    assert through_nft is None  # an nftables accept cannot override iptables-nft's DROP policy
