"""excluded_ranges: cut out of the plan once, so both backends render, read back and gather the same."""

import pytest

from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway import iptables as ipt
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway import ipset
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway import nftables as nft
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.model import validate
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.plan import build_plan, effective_ranges
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.run import run_rendered
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError

PARAMS = {"network_interface": "nm0", "ranges": ["192.0.2.0/24", "2001:db8:1::/64", "198.51.100.0/24"],
          "excluded_ranges": ["192.0.2.128/25", "192.0.2.0/28", "2001:db8:1:0:8000::/65", "198.51.100.0/24"]}


def plan_for(params, interface="up1"):
    config = validate(params)
    return build_plan(config, {cidr: interface for cidr in effective_ranges(config)})


def test_excluded_ranges_are_validated_and_named():
    with pytest.raises(InputError, match=r"excluded_ranges\[1\]: '10.0.0.0/33' is not a valid CIDR"):
        validate({"network_interface": "nm0", "excluded_ranges": ["10.0.0.0/8", "10.0.0.0/33"]})
    config = validate(dict(PARAMS, excluded_ranges=["192.0.2.7/25", "2001:DB8::/32"]))
    assert config.excluded_ranges == ("192.0.2.0/25", "2001:db8::/32")


def test_plan_destinations_are_the_ranges_minus_the_excluded_parts():
    config = validate(PARAMS)
    # A wholly excluded range needs no outbound interface (no route lookup).
    assert effective_ranges(config) == ("192.0.2.0/24", "2001:db8:1::/64")
    plan = plan_for(PARAMS)
    assert [(path.family, path.destinations) for path in plan.paths] == [
        ("ipv4", ("192.0.2.16/28", "192.0.2.32/27", "192.0.2.64/26")), ("ipv6", ("2001:db8:1::/65",))]
    assert plan.union == {"ipv4": ("192.0.2.16/28", "192.0.2.32/27", "192.0.2.64/26"), "ipv6": ("2001:db8:1::/65",)}


def test_segmented_networks_and_their_union_lose_the_excluded_parts():
    params = {"network_interface": "nm0", "excluded_ranges": ["10.1.128.0/17"], "ranges": ["10.9.0.0/16"],
              "networks": [{"name": "a", "cidr": "100.64.1.0/24", "ranges": ["10.1.0.0/16"]},
                           {"name": "b", "cidr": "100.64.2.0/24", "ranges": ["10.2.0.0/16"]}]}
    plan = plan_for(params)
    assert [(path.network, path.destinations) for path in plan.paths] == [
        ("a", ("10.1.0.0/17",)), ("b", ("10.2.0.0/16",))]
    assert plan.union["ipv4"] == ("10.1.0.0/17", "10.2.0.0/16", "10.9.0.0/16")


def test_both_backends_render_only_the_remaining_destinations():
    plan = plan_for(PARAMS)
    script = nft.render_script(plan)
    # One hash set per prefix length: the remaining /28, /27 and /26 each in the set of its length.
    sets = nft.desired_sets(plan)
    assert {name: elements for name, (_family, elements) in sets.items() if "_p0_" in name} == {
        "netkit_p0_dst4_l28": ("192.0.2.16",), "netkit_p0_dst4_l27": ("192.0.2.32",),
        "netkit_p0_dst4_l26": ("192.0.2.64",)}
    assert "ip daddr & 255.255.255.240 @netkit_p0_dst4_l28 masquerade" in script
    assert "elements = { 2001:db8:1:: }" in script and "@netkit_p1_dst6_l65" in script
    assert "198.51.100" not in script
    sets = ipset.desired_sets(plan)
    assert sets["netkit-egress-p0-dst4"] == ("ipv4", ("192.0.2.16/28", "192.0.2.32/27", "192.0.2.64/26"))
    assert sets["netkit-egress-p1-dst6"] == ("ipv6", ("2001:db8:1::/65",))
    rendered = run_rendered(dict(PARAMS, backend="iptables", iptables_variant="auto", interface="up1"),
                            validate(dict(PARAMS, interface="up1")))
    assert set(rendered["rendered"]) == {"ipv4", "ipv6", "ipset"}
    assert rendered["excluded_ranges"] == ["192.0.2.128/25", "192.0.2.0/28", "2001:db8:1:0:8000::/65",
                                           "198.51.100.0/24"]
    assert rendered["interfaces"] == {"192.0.2.0/24": "up1", "2001:db8:1::/64": "up1"}


def test_iptables_gathered_reports_the_remaining_ranges_and_is_a_no_op_again():
    plan = plan_for(PARAMS)
    rules = ipt.desired_rules(plan, "ipv4")
    save = ("*filter\n:FORWARD ACCEPT [0:0]\n:NETKIT-EGRESS-FWD - [0:0]\n-A FORWARD -j NETKIT-EGRESS-FWD\n"
            + "\n".join(rules["filter"]) + "\nCOMMIT\n*nat\n:POSTROUTING ACCEPT [0:0]\n:NETKIT-EGRESS-NAT - [0:0]\n"
            "-A POSTROUTING -j NETKIT-EGRESS-NAT\n" + "\n".join(rules["nat"]) + "\nCOMMIT\n")
    gathered, interfaces = ipt.gather({"ipv4": ipt.parse_save(save, ipset.desired_sets(plan))})
    assert gathered["ranges"] == ["192.0.2.16/28", "192.0.2.32/27", "192.0.2.64/26"]
    assert gathered["excluded_ranges"] == [] and set(interfaces.values()) == {"up1"}
    again = plan_for(dict(gathered, network_interface="nm0"))
    assert ipt.desired_canonical(again, "ipv4") == ipt.desired_canonical(plan, "ipv4")


def test_roll_back_restores_our_chains_and_jumps_only():
    before = ("*filter\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\n:NETKIT-EGRESS-FWD - [0:0]\n"
              "-A FORWARD -j DOCKER-USER\n-A FORWARD -j NETKIT-EGRESS-FWD\n"
              "-A NETKIT-EGRESS-FWD -i nm0 -o up1 -j ACCEPT\nCOMMIT\n")
    after = ("*filter\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\n:NETKIT-EGRESS-FWD - [0:0]\n"
             ":NETKIT-EGRESS-NEW - [0:0]\n-A FORWARD -j NETKIT-EGRESS-FWD\n-A FORWARD -j DOCKER-USER\n"
             "-A NETKIT-EGRESS-FWD -i nm0 -o up2 -j ACCEPT\nCOMMIT\n")
    assert ipt.restore_previous(before, after) == (
        "*filter\n-D FORWARD -j NETKIT-EGRESS-FWD\n:NETKIT-EGRESS-FWD - [0:0]\n-F NETKIT-EGRESS-NEW\n"
        "-X NETKIT-EGRESS-NEW\n-A NETKIT-EGRESS-FWD -i nm0 -o up1 -j ACCEPT\n-I FORWARD 2 -j NETKIT-EGRESS-FWD\n"
        "COMMIT\n")
    assert ipt.restore_previous(before, before) == ""
