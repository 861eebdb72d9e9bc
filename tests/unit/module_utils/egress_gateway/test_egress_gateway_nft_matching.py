"""The nftables render matches exactly the addresses of the ranges (minus the excluded ones): the rules and
the per-prefix-length hash sets are evaluated as the kernel evaluates them (``addr & mask`` looked up in the
set of that length, any rule of the path), against ``ipaddress`` on random ranges and random addresses."""

import ipaddress
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway import nftables as nft
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.model import validate
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.plan import build_plan, effective_ranges

BITS = {4: 32, 6: 128}
LOOKUP = re.compile(r"\b(ip6?) (saddr|daddr)(?: & (\S+))? @(\S+)")
PROTOCOL = {4: "ip", 6: "ip6"}
NETWORK = {4: ipaddress.IPv4Network, 6: ipaddress.IPv6Network}


def networks(version):
    # Addresses drawn near a few bases so that ranges overlap, nest and touch often.
    bits = BITS[version]
    base = st.sampled_from([0, 1 << (bits - 1), 0x0A000000 << (bits - 32), (1 << bits) - (1 << 12)])

    def network(first, offset, prefix):
        return NETWORK[version](((first + offset) % (1 << bits), prefix), strict=False)

    return st.builds(network, base, st.integers(0, 1 << 14), st.integers(0, bits))


def evaluate(rules, sets, field, version, address):
    """Does any rule's ``field`` lookup match ``address`` (as the kernel does: mask, then hash lookup)?"""
    value = int(address)
    for rule in rules:
        for protocol, found_field, mask, set_name in LOOKUP.findall(rule):
            if found_field != field or protocol != PROTOCOL[version]:
                continue
            masked = value & int(ipaddress.ip_address(mask)) if mask else value
            members = {int(ipaddress.ip_address(text)) for text in sets[set_name][1]}
            if masked in members:
                return True
    return False


@settings(max_examples=200, deadline=None)
@given(version=st.sampled_from([4, 6]), data=st.data())
def test_destination_matching_is_exactly_the_ranges_minus_the_excluded(version, data):
    ranges = data.draw(st.lists(networks(version), min_size=1, max_size=12))
    excluded = data.draw(st.lists(networks(version), max_size=3))
    probes = data.draw(st.lists(networks(version), min_size=20, max_size=40))
    config = validate({"network_interface": "nm0", "ranges": [str(n) for n in ranges],
                       "excluded_ranges": [str(n) for n in excluded]})
    plan = build_plan(config, {cidr: "up1" for cidr in effective_ranges(config)})
    sets = nft.desired_sets(plan)
    # Without networks the masquerade rules alone carry the paths (no forward chain).
    masquerade = [rule for rule in nft.desired_rules(plan)["postrouting"] if rule.startswith('iifname "nm0" oifname')]
    addresses = [probe.network_address for probe in probes] + [probe.broadcast_address for probe in probes]
    addresses += [n.network_address for n in ranges + excluded] + [n.broadcast_address for n in ranges + excluded]
    for address in addresses:
        inside = any(address in n for n in ranges) and not any(address in n for n in excluded)
        assert evaluate(masquerade, sets, "daddr", version, address) == inside, (address, ranges, excluded)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_source_and_destination_pairs_are_matched_exactly(data):
    cidrs = data.draw(st.lists(networks(4), min_size=1, max_size=5))
    ranges = data.draw(st.lists(networks(4), min_size=1, max_size=5))
    config = validate({"network_interface": "nm0", "networks": [
        {"name": "a", "cidr": [str(n) for n in cidrs], "ranges": [str(n) for n in ranges]}]})
    plan = build_plan(config, {cidr: "up1" for cidr in effective_ranges(config)})
    sets = nft.desired_sets(plan)
    forward = [rule for rule in nft.desired_rules(plan)["forward"] if rule.startswith('iifname "nm0" oifname')]
    points = data.draw(st.lists(st.tuples(networks(4), networks(4)), min_size=10, max_size=20))
    pairs = [(s.network_address, d.broadcast_address) for s, d in points]
    pairs += [(c.network_address, r.broadcast_address) for c in cidrs for r in ranges]
    for source, destination in pairs:
        expected = any(source in n for n in cidrs) and any(destination in n for n in ranges)
        matched = any(evaluate([rule], sets, "saddr", 4, source) and evaluate([rule], sets, "daddr", 4, destination)
                      for rule in forward)
        assert matched == expected, (source, destination, cidrs, ranges)
