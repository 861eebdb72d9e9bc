"""Golden renders for nftables and iptables, and canonical comparison of what the kernel reports."""

import json

from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway import iptables as ipt
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway import ipset
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway import nftables as nft
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.model import validate
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.plan import build_plan

SEGMENTED = {"network_interface": "nm0", "nat": True, "reverse_nat": True,
             "networks": [{"name": "a", "cidr": ["100.64.1.0/24", "fd00:1::/64"],
                           "ranges": ["192.0.2.0/24", "2001:db8::/32"]},
                          {"name": "b", "cidr": "100.64.2.0/24", "ranges": ["198.51.100.0/24"]}]}


def plan_for(params, interface="up1"):
    config = validate(params)
    return build_plan(config, {cidr: interface for cidr in config.ranges})


def test_nft_golden_simple():
    plan = plan_for({"network_interface": "nm0", "ranges": ["10.1.2.3/8", "10.0.0.0/16"]})
    assert nft.render_script(plan) == (
        "table inet netkit_egress {}\n"
        "delete table inet netkit_egress\n"
        "table inet netkit_egress {\n"
        "\tset netkit_p0_dst4_l8 {\n\t\ttype ipv4_addr\n"
        '\t\tcomment "/8 ranges to up1 (elements: network addresses)"\n'
        "\t\telements = { 10.0.0.0 }\n\t}\n"
        "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        '\t\tiifname "nm0" oifname "up1" ip daddr & 255.0.0.0 @netkit_p0_dst4_l8 masquerade\n\t}\n'
        "}\n")


def test_nft_without_networks_and_with_nat_has_no_forward_chain():
    """Our forward chain's accept cannot override another table's drop and its policy is accept: without
    segmentation it would decide nothing, so with nat the masquerade rules alone carry the paths."""
    for forward_accept in (True, False):
        plan = plan_for({"network_interface": "nm0", "ranges": ["10.0.0.0/8"], "forward_accept": forward_accept})
        assert list(nft.desired_rules(plan)) == ["postrouting"]
        assert "forward" not in nft.render_script(plan) and "chain forward" not in nft.desired_canonical(plan)


def test_nft_without_nat_keeps_the_forward_rules_as_the_record_of_the_paths():
    plan = plan_for({"network_interface": "nm0", "ranges": ["10.0.0.0/8"], "nat": False})
    assert nft.desired_rules(plan) == {
        "forward": ['oifname "nm0" ct state established,related accept',
                    'iifname "nm0" oifname "up1" ip daddr & 255.0.0.0 @netkit_p0_dst4_l8 accept'],
        "postrouting": []}
    plan = plan_for({"network_interface": "nm0", "ranges": ["10.0.0.0/8"], "nat": False, "forward_accept": False})
    assert nft.desired_rules(plan)["forward"] == [
        'iifname "nm0" oifname "up1" ip daddr & 255.0.0.0 @netkit_p0_dst4_l8 return']


def test_nft_segmented_keeps_its_drops_with_and_without_nat():
    for nat in (True, False):
        forward = nft.desired_rules(plan_for(dict(SEGMENTED, nat=nat, reverse_nat=False)))["forward"]
        assert forward[-2:] == ['iifname "nm0" ip daddr & 255.255.255.0 @netkit_all4_l24 drop',
                                'iifname "nm0" ip6 daddr & ffff:ffff:: @netkit_all6_l32 drop']
        # the accepts of the allowed pairs come before the drops
        assert [rule.split(" comment ")[0].split()[-1] for rule in forward[1:-2]] == ["accept"] * 3


ROUND_TRIP = [
    {"network_interface": "nm0", "ranges": ["10.0.0.0/8", "2001:db8::/32"]},
    {"network_interface": "nm0", "ranges": ["10.0.0.0/8"], "forward_accept": False},
    {"network_interface": "nm0", "ranges": ["10.0.0.0/8", "192.0.2.7"], "nat": False},
    {"network_interface": "nm0", "ranges": ["10.0.0.0/8"], "nat": False, "forward_accept": False},
    SEGMENTED, dict(SEGMENTED, nat=False, reverse_nat=False), dict(SEGMENTED, forward_accept=False),
]


def test_nft_gathered_is_valid_input_again_with_and_without_a_forward_chain():
    """gathered from the kernel's report of a render, fed back as input, renders the same table."""
    for params in ROUND_TRIP:
        plan = plan_for(params)
        gathered, interfaces = nft.gather(_kernel_json(plan, with_rules=True))
        assert set(interfaces.values()) == {"up1"}
        again = plan_for({key: value for key, value in gathered.items() if key != "state"})
        assert nft.desired_canonical(again) == nft.desired_canonical(plan), params
        assert gathered["nat"] == params.get("nat", True)
        # no forward chain: forward_accept is unobservable and reported as its default
        expected = params.get("forward_accept", True) if nft.has_forward_chain(plan) else True
        assert gathered["forward_accept"] is expected, params


def test_nft_a_forward_chain_of_an_earlier_version_is_a_difference():
    """A table left by an earlier version (a forward chain without networks) is replaced once on apply."""
    plan = plan_for({"network_interface": "nm0", "ranges": ["10.0.0.0/8"]})
    old = _kernel_json(plan, with_rules=True)
    old.append({"chain": {"family": "inet", "table": "netkit_egress", "name": "forward", "handle": 1,
                          "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}})
    assert nft.current_canonical(_kernel_json(plan, with_rules=True)) == nft.desired_canonical(plan)
    assert nft.current_canonical(old) != nft.desired_canonical(plan)


def test_nft_one_rule_per_prefix_length_and_per_pair_of_lengths():
    """A path whose ranges have two prefix lengths gets two rules; with sources of two lengths, four."""
    plan = plan_for({"network_interface": "nm0", "ranges": ["10.0.0.0/16", "192.0.2.7", "0.0.0.0/0"]})
    assert nft.desired_sets(plan) == {"netkit_p0_dst4_l1": ("ipv4", ("0.0.0.0", "128.0.0.0"))}
    plan = plan_for({"network_interface": "nm0", "ranges": ["10.0.0.0/16", "192.0.2.7"]})
    assert nft.desired_rules(plan)["postrouting"] == [
        'iifname "nm0" oifname "up1" ip daddr @netkit_p0_dst4_l32 masquerade',
        'iifname "nm0" oifname "up1" ip daddr & 255.255.0.0 @netkit_p0_dst4_l16 masquerade']
    plan = plan_for({"network_interface": "nm0", "networks": [
        {"name": "a", "cidr": ["100.64.1.0/24", "100.64.2.0/25"], "ranges": ["10.0.0.0/16", "192.0.2.7"]}]})
    forward = [rule for rule in nft.desired_rules(plan)["forward"] if 'iifname "nm0" oifname' in rule]
    assert len(forward) == 4 and all(rule.endswith('accept comment "network a"') for rule in forward)
    assert ('ip saddr & 255.255.255.128 @netkit_p0_src4_l25 ip daddr @netkit_p0_dst4_l32 accept' in forward[0])


def test_nft_set_comments_say_what_the_bare_addresses_are():
    """``nft list`` shows a per-length set's elements as bare addresses: each set's comment names the length,
    whose ranges they are, and stays within nft's 128 characters for the longest names."""
    comments = nft.set_comments(plan_for(SEGMENTED))
    assert comments["netkit_p0_dst4_l24"] == "/24 ranges of network a (elements: network addresses)"
    assert comments["netkit_p1_src6_l64"] == "/64 sources of network a (elements: network addresses)"
    assert comments["netkit_all4_l24"] == "/24 ranges of all networks (elements: network addresses)"
    longest = "n" * 63
    plan = plan_for({"network_interface": "nm0", "networks": [
        {"name": longest, "cidr": ["fd00:1::1/128"], "ranges": ["2001:db8::1/128"]}]}, "x" * 15)
    assert max(len(comment) for comment in nft.set_comments(plan).values()) <= 128
    assert nft.set_comments(plan_for({"network_interface": "nm0", "ranges": ["2001:db8::1/128"]}, "x" * 15)) == {
        "netkit_p0_dst6_l128": "/128 ranges to xxxxxxxxxxxxxxx (elements: network addresses)"}


def test_nft_segmented_rules():
    rules = nft.desired_rules(plan_for(SEGMENTED))
    assert rules["forward"] == [
        'oifname "nm0" ct state established,related accept',
        'iifname "nm0" ct state established,related accept',
        'iifname "nm0" oifname "up1" ip saddr & 255.255.255.0 @netkit_p0_src4_l24 '
        'ip daddr & 255.255.255.0 @netkit_p0_dst4_l24 accept comment "network a"',
        'iifname "nm0" oifname "up1" ip6 saddr & ffff:ffff:ffff:ffff:: @netkit_p1_src6_l64 '
        'ip6 daddr & ffff:ffff:: @netkit_p1_dst6_l32 accept comment "network a"',
        'iifname "nm0" oifname "up1" ip saddr & 255.255.255.0 @netkit_p2_src4_l24 '
        'ip daddr & 255.255.255.0 @netkit_p2_dst4_l24 accept comment "network b"',
        'iifname "up1" oifname "nm0" ip saddr & 255.255.255.0 @netkit_p0_dst4_l24 '
        'ip daddr & 255.255.255.0 @netkit_p0_src4_l24 accept comment "network a"',
        'iifname "up1" oifname "nm0" ip6 saddr & ffff:ffff:: @netkit_p1_dst6_l32 '
        'ip6 daddr & ffff:ffff:ffff:ffff:: @netkit_p1_src6_l64 accept comment "network a"',
        'iifname "up1" oifname "nm0" ip saddr & 255.255.255.0 @netkit_p2_dst4_l24 '
        'ip daddr & 255.255.255.0 @netkit_p2_src4_l24 accept comment "network b"',
        'iifname "nm0" ip daddr & 255.255.255.0 @netkit_all4_l24 drop',
        'iifname "nm0" ip6 daddr & ffff:ffff:: @netkit_all6_l32 drop']
    assert rules["postrouting"][-1] == ('oifname "nm0" ip saddr & 255.255.255.0 @netkit_p2_dst4_l24 '
                                        'ip daddr & 255.255.255.0 @netkit_p2_src4_l24 masquerade comment "network b"')


def _kernel_json(plan, with_rules=False):
    """What ``nft -j list table`` reports for the rendered table: hash sets listed in the kernel's own
    (unordered) element order; its rules too with ``with_rules``."""
    items = [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "inet", "name": "netkit_egress", "handle": 9}}]
    comments = nft.set_comments(plan)
    for name, (family, elements) in nft.desired_sets(plan).items():
        set_json = {"family": "inet", "name": name, "table": "netkit_egress", "handle": 3,
                    "type": nft.SET_TYPES[family], "comment": comments[name]}
        if elements:
            set_json["elem"] = list(reversed(elements))
        items.append({"set": set_json})
    rules = nft.desired_rules(plan)
    for chain in rules:
        chain_type, hook, prio = nft.BASE_CHAINS[chain][:3]
        items.append({"chain": {"family": "inet", "table": "netkit_egress", "name": chain, "handle": 1,
                                "type": chain_type, "hook": hook, "prio": prio, "policy": "accept"}})
    if with_rules:
        items += [_rule(chain, _rule_json(text)[0], _rule_json(text)[1]) for chain in rules for text in rules[chain]]
    return items


def _rule_json(text):
    """(nft -j expressions, comment) of one rule in the ``nft list`` syntax ``desired_rules`` writes."""
    matches, marker, comment = text.partition(' comment "')
    words, expr = matches.split(), []
    while words:
        word = words.pop(0)
        if word in ("iifname", "oifname"):
            expr.append(_match({"meta": {"key": word}}, words.pop(0).strip('"')))
        elif word == "ct":
            words.pop(0)
            expr.append({"match": {"op": "in", "left": {"ct": {"key": "state"}},
                                   "right": words.pop(0).split(",")}})
        elif word in ("ip", "ip6"):
            field = words.pop(0)
            mask = None
            if words[0] == "&":
                mask = words[1]
                del words[:2]
            expr.append(_lookup(word, field, mask, words.pop(0)[1:]))
        else:
            expr.append({word: None})
    return expr, comment[:-1] if marker else None


def _rule(chain, expr, comment=None):
    rule = {"family": "inet", "table": "netkit_egress", "chain": chain, "handle": 7, "expr": expr}
    if comment:
        rule["comment"] = comment
    return {"rule": rule}


def _match(left, right):
    return {"match": {"op": "==", "left": left, "right": right}}


def _lookup(proto, field, mask, set_name):
    payload = {"payload": {"protocol": proto, "field": field}}
    return _match({"&": [payload, mask]} if mask else payload, f"@{set_name}")


def test_nft_canonical_compare_is_idempotent_with_messy_input():
    plan = plan_for({"network_interface": "nm0",
                     "ranges": ["10.1.2.3/8", "10.0.0.0/16", "2001:DB8::/32", "192.0.2.5", "192.0.2.4/32"]}, "up1")
    table = _kernel_json(plan)
    meta = {"meta": {"key": "oifname"}}
    iif = {"meta": {"key": "iifname"}}
    paths = [_lookup("ip", "daddr", "255.255.255.254", "netkit_p0_dst4_l31"),
             _lookup("ip", "daddr", "255.0.0.0", "netkit_p0_dst4_l8"),
             _lookup("ip6", "daddr", "ffff:ffff::", "netkit_p1_dst6_l32")]
    table += [_rule("postrouting", [_match(iif, "nm0"), _match(meta, "up1"), lookup, {"masquerade": None}])
              for lookup in paths]
    assert nft.current_canonical(table) == nft.desired_canonical(plan)
    gathered, interfaces = nft.gather(table)
    assert gathered["ranges"] == ["10.0.0.0/8", "192.0.2.4/31", "2001:db8::/32"]
    assert interfaces["2001:db8::/32"] == "up1" and gathered["nat"] is True


def test_nft_drift_in_a_hash_set_is_a_difference():
    """An address with host bits set in a per-length set matches nothing: it must not compare equal."""
    plan = plan_for({"network_interface": "nm0", "ranges": ["10.0.0.0/24"]})
    desired = nft.desired_canonical(plan)
    table = json.loads(json.dumps(_kernel_json(plan)))
    for item in table:
        if item.get("set", {}).get("name") == "netkit_p0_dst4_l24":
            item["set"]["elem"] = ["10.0.0.5"]
    assert "elements { 10.0.0.5/24 }" in nft.current_canonical(table) and "elements { 10.0.0.0/24 }" in desired


def test_nft_interval_sets_of_earlier_versions_read_back_and_differ():
    """A table left by an earlier version (one interval set per path) is gathered, and replaced on apply."""
    plan = plan_for({"network_interface": "nm0", "ranges": ["10.0.0.0/8"]})
    meta = {"meta": {"key": "oifname"}}
    iif = {"meta": {"key": "iifname"}}
    table = [{"set": {"family": "inet", "name": "netkit_p0_dst4", "table": "netkit_egress", "type": "ipv4_addr",
                      "flags": ["interval"], "elem": [{"prefix": {"addr": "10.0.0.0", "len": 8}}]}},
             _rule("forward", [_match(iif, "nm0"), _match(meta, "up1"),
                               _lookup("ip", "daddr", None, "netkit_p0_dst4"), {"accept": None}])]
    assert nft.gather(table)[0]["ranges"] == ["10.0.0.0/8"]
    assert nft.current_canonical(table) != nft.desired_canonical(plan)


def test_nft_drift_is_detected():
    plan = plan_for({"network_interface": "nm0", "ranges": ["10.0.0.0/8"]})
    table = _kernel_json(plan)
    assert nft.current_canonical(table) != nft.desired_canonical(plan)  # rules missing
    assert nft.current_canonical(None) is None


def test_iptables_golden_segmented_ipv4():
    """One rule per path, ranges and network cidrs matched by ipset sets (not one rule per pair)."""
    plan = plan_for(SEGMENTED)
    a4 = "-m set --match-set netkit-egress-p0-src4 src -m set --match-set netkit-egress-p0-dst4 dst"
    b4 = "-m set --match-set netkit-egress-p2-src4 src -m set --match-set netkit-egress-p2-dst4 dst"
    a4_back = "-m set --match-set netkit-egress-p0-dst4 src -m set --match-set netkit-egress-p0-src4 dst"
    b4_back = "-m set --match-set netkit-egress-p2-dst4 src -m set --match-set netkit-egress-p2-src4 dst"
    assert ipt.render_restore(plan, "ipv4") == (
        "*filter\n"
        ":NETKIT-EGRESS-FWD - [0:0]\n"
        "-A NETKIT-EGRESS-FWD -o nm0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
        "-A NETKIT-EGRESS-FWD -i nm0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
        f'-A NETKIT-EGRESS-FWD -i nm0 -o up1 {a4} -m comment --comment "network=a" -j ACCEPT\n'
        f'-A NETKIT-EGRESS-FWD -i nm0 -o up1 {b4} -m comment --comment "network=b" -j ACCEPT\n'
        f'-A NETKIT-EGRESS-FWD -i up1 -o nm0 {a4_back} -m comment --comment "network=a" -j ACCEPT\n'
        f'-A NETKIT-EGRESS-FWD -i up1 -o nm0 {b4_back} -m comment --comment "network=b" -j ACCEPT\n'
        "-A NETKIT-EGRESS-FWD -i nm0 -m set --match-set netkit-egress-all4 dst -j DROP\n"
        "-I FORWARD 1 -j NETKIT-EGRESS-FWD\n"
        "COMMIT\n"
        "*nat\n"
        ":NETKIT-EGRESS-NAT - [0:0]\n"
        f'-A NETKIT-EGRESS-NAT -o up1 {a4} -m comment --comment "network=a" -j MASQUERADE\n'
        f'-A NETKIT-EGRESS-NAT -o up1 {b4} -m comment --comment "network=b" -j MASQUERADE\n'
        f'-A NETKIT-EGRESS-NAT -o nm0 {a4_back} -m comment --comment "network=a" -j MASQUERADE\n'
        f'-A NETKIT-EGRESS-NAT -o nm0 {b4_back} -m comment --comment "network=b" -j MASQUERADE\n'
        "-I POSTROUTING 1 -j NETKIT-EGRESS-NAT\n"
        "COMMIT\n")


def test_ipset_golden_segmented():
    plan = plan_for(SEGMENTED)
    assert ipset.desired_sets(plan, "ipv4") == {
        "netkit-egress-p0-src4": ("ipv4", ("100.64.1.0/24",)), "netkit-egress-p0-dst4": ("ipv4", ("192.0.2.0/24",)),
        "netkit-egress-p2-src4": ("ipv4", ("100.64.2.0/24",)), "netkit-egress-p2-dst4": ("ipv4", ("198.51.100.0/24",)),
        "netkit-egress-all4": ("ipv4", ("192.0.2.0/24", "198.51.100.0/24"))}
    script = ipset.render_restore(ipset.desired_sets(plan, "ipv6"), existing={"netkit-egress-p1-dst6-new"})
    assert script == (
        "create netkit-egress-p1-src6 hash:net family inet6\n"
        "create netkit-egress-p1-src6-new hash:net family inet6 maxelem 65536\n"
        "add netkit-egress-p1-src6-new fd00:1::/64\n"
        "swap netkit-egress-p1-src6-new netkit-egress-p1-src6\n"
        "destroy netkit-egress-p1-src6-new\n"
        "destroy netkit-egress-p1-dst6-new\n"  # left over by an interrupted run: its size may differ
        "create netkit-egress-p1-dst6 hash:net family inet6\n"
        "create netkit-egress-p1-dst6-new hash:net family inet6 maxelem 65536\n"
        "add netkit-egress-p1-dst6-new 2001:db8::/32\n"
        "swap netkit-egress-p1-dst6-new netkit-egress-p1-dst6\n"
        "destroy netkit-egress-p1-dst6-new\n"
        "create netkit-egress-all6 hash:net family inet6\n"
        "create netkit-egress-all6-new hash:net family inet6 maxelem 65536\n"
        "add netkit-egress-all6-new 2001:db8::/32\n"
        "swap netkit-egress-all6-new netkit-egress-all6\n"
        "destroy netkit-egress-all6-new\n")
    assert ipset.render_destroy(["netkit-egress-p7-dst4"]) == "destroy netkit-egress-p7-dst4\n"


def test_ipset_whole_space_and_large_sets():
    """hash:net refuses /0: it is stored as two halves and read back as /0; maxelem grows with the set."""
    sets = {"netkit-egress-p0-dst4": ("ipv4", ("0.0.0.0/0",)),
            "netkit-egress-p1-dst4": ("ipv4", tuple(f"10.{i // 256}.{i % 256}.0/24" for i in range(0, 140000, 2)))}
    script = ipset.render_restore(sets)
    assert "add netkit-egress-p0-dst4-new 0.0.0.0/1\nadd netkit-egress-p0-dst4-new 128.0.0.0/1\n" in script
    assert "create netkit-egress-p1-dst4-new hash:net family inet maxelem 70000\n" in script
    saved = ("create netkit-egress-p0-dst4 hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12\n"
             "add netkit-egress-p0-dst4 128.0.0.0/1\nadd netkit-egress-p0-dst4 0.0.0.0/1\n"
             "create netkit-egress-p9-dst6 hash:net family inet6 hashsize 1024 maxelem 65536\n"
             "add netkit-egress-p9-dst6 2001:db8::1\nadd netkit-egress-p9-dst6 2001:db8::/127\n"
             "create docker-owned hash:ip family inet hashsize 1024 maxelem 65536\nadd docker-owned 10.0.0.1\n")
    assert ipset.parse_save(saved) == {"netkit-egress-p0-dst4": ("ipv4", ("0.0.0.0/0",)),
                                       "netkit-egress-p9-dst6": ("ipv6", ("2001:db8::/127",))}


def test_iptables_test_input_leaves_out_sets_that_do_not_exist_yet():
    plan = plan_for(SEGMENTED)
    restore = ipt.render_restore(plan, "ipv4")
    testable = ipt.testable(restore, {"netkit-egress-p0-src4"})
    assert "netkit-egress-p0-dst4" not in testable and "--match-set netkit-egress-p0-src4 src" in testable
    assert '-A NETKIT-EGRESS-FWD -i nm0 -o up1 -m comment --comment "network=b" -j ACCEPT' in testable
    assert "-A NETKIT-EGRESS-FWD -i nm0 -j DROP" in testable
    assert ipt.testable(restore, set(ipset.desired_sets(plan))) == restore


def test_iptables_jumps_only_when_missing_and_round_trip():
    plan = plan_for(SEGMENTED)
    restore = ipt.render_restore(plan, "ipv4", {"filter": True, "nat": True})
    assert "-I FORWARD" not in restore and "-I POSTROUTING" not in restore
    rules = ipt.desired_rules(plan, "ipv4")
    save = ("*nat\n:POSTROUTING ACCEPT [0:0]\n:NETKIT-EGRESS-NAT - [0:0]\n-A POSTROUTING -j NETKIT-EGRESS-NAT\n"
            "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n" + "\n".join(rules["nat"]) + "\nCOMMIT\n"
            "*filter\n:FORWARD DROP [3:180]\n:DOCKER-USER - [0:0]\n:NETKIT-EGRESS-FWD - [0:0]\n"
            "-A FORWARD -j NETKIT-EGRESS-FWD\n-A FORWARD -j DOCKER-USER\n" + "\n".join(rules["filter"]) + "\nCOMMIT\n")
    sets = ipset.desired_sets(plan)
    parsed = ipt.parse_save(save, sets)
    assert ipt.current_canonical(parsed) == ipt.desired_canonical(plan, "ipv4")
    # A set whose content drifted, or that is missing, is a difference even though every rule is equal.
    drifted = dict(sets, **{"netkit-egress-all4": ("ipv4", ("192.0.2.0/24",))})
    assert ipt.current_canonical(ipt.parse_save(save, drifted)) != ipt.desired_canonical(plan, "ipv4")
    missing = {name: value for name, value in sets.items() if name != "netkit-egress-p0-dst4"}
    assert "ipset netkit-egress-p0-dst4: missing" in ipt.current_canonical(ipt.parse_save(save, missing))
    removal = ipt.render_removal(parsed)
    assert "-D FORWARD -j NETKIT-EGRESS-FWD\n-F NETKIT-EGRESS-FWD\n-X NETKIT-EGRESS-FWD" in removal
    assert "DOCKER" not in removal and "MASQUERADE" not in removal
    gathered = ipt.gather({"ipv4": parsed})[0]
    assert gathered["networks"] == [{"name": "a", "cidr": ["100.64.1.0/24"], "ranges": ["192.0.2.0/24"]},
                                    {"name": "b", "cidr": ["100.64.2.0/24"], "ranges": ["198.51.100.0/24"]}]
    assert gathered["reverse_nat"] is True and gathered["nat"] is True and gathered["network_interface"] == "nm0"


def test_iptables_absent_when_nothing_is_ours():
    parsed = ipt.parse_save("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT\n")
    assert ipt.current_canonical(parsed) is None and ipt.render_removal(parsed) == ""


def test_rendered_state_runs_offline_and_needs_an_interface():
    from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.run import run_rendered
    from ansible_collections.netkit.egress.plugins.module_utils._net import InputError as Failure
    params = {"backend": "iptables", "iptables_variant": "auto", "network_interface": "wg-not-here",
              "ranges": ["192.0.2.9/24", "2001:db8::/32"], "interface": "eth9"}
    result = run_rendered(params, validate(params))
    assert set(result["rendered"]) == {"ipv4", "ipv6", "ipset"} and result["changed"] is False
    assert ("-A NETKIT-EGRESS-NAT -o eth9 -m set --match-set netkit-egress-p1-dst6 dst -j MASQUERADE"
            in result["rendered"]["ipv6"])
    assert "add netkit-egress-p1-dst6-new 2001:db8::/32\n" in result["rendered"]["ipset"]
    params = dict(params, backend="auto")
    assert run_rendered(params, validate(params))["rendered"].startswith("table inet netkit_egress {}\n")
    params.pop("interface")
    try:
        run_rendered(params, validate(params))
    except Failure as error:
        assert str(error).startswith("interface: required with state=rendered")
    else:
        raise AssertionError("rendered without interface must fail")


def test_ipset_prepare_before_the_rules_and_commit_after():
    """A run changes nothing a packet sees before the rules: new sets are created with their content, new
    content of existing sets waits in NAME-new; the swap comes after the rules. Equal sets are left alone."""
    wanted = {"netkit-egress-p0-dst4": ("ipv4", ("192.0.2.0/24",)),
              "netkit-egress-p1-dst4": ("ipv4", ("198.51.100.0/24",)),
              "netkit-egress-p2-dst4": ("ipv4", ("203.0.113.0/24",))}
    existing = {"netkit-egress-p0-dst4": ("ipv4", ("192.0.2.0/25",)),
                "netkit-egress-p1-dst4": ("ipv4", ("198.51.100.0/24",)),
                "netkit-egress-p2-dst4-new": ("ipv4", ())}
    assert ipset.render_prepare(wanted, existing) == (
        "create netkit-egress-p0-dst4-new hash:net family inet maxelem 65536\n"
        "add netkit-egress-p0-dst4-new 192.0.2.0/24\n"
        "create netkit-egress-p2-dst4 hash:net family inet maxelem 65536\n"
        "add netkit-egress-p2-dst4 203.0.113.0/24\n")
    assert ipset.prepared_names(wanted, existing) == ["netkit-egress-p0-dst4-new", "netkit-egress-p2-dst4"]
    assert ipset.render_commit(wanted, existing) == (
        "swap netkit-egress-p0-dst4-new netkit-egress-p0-dst4\ndestroy netkit-egress-p0-dst4-new\n")
    assert ipset.render_prepare(wanted, dict(wanted)) == "" and ipset.render_commit(wanted, dict(wanted)) == ""
    undo = ipset.render_restore({"netkit-egress-p0-dst4": existing["netkit-egress-p0-dst4"]}, keep_temp=True)
    assert undo.endswith("swap netkit-egress-p0-dst4-new netkit-egress-p0-dst4\n")
