"""Validation and planning of the egress gateway model: every bad input names its field."""

import pytest

from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.model import (
    desired_sysctls, route_probes, validate)
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.plan import build_plan
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError, address_text, collapse

BASE = {"network_interface": "nm0"}


@pytest.mark.parametrize("params, message", [
    ({"ranges": ["192.0.2.0/24", "10.0.0.0/33"]}, "ranges[1]: '10.0.0.0/33' is not a valid CIDR"),
    ({"ranges": ["nonsense"]}, "ranges[0]: 'nonsense' is not a valid CIDR"),
    ({"ranges": [" 10.0.0.0/8"]}, "ranges[0]: ' 10.0.0.0/8' is not a valid CIDR"),
    ({"ranges": "10.0.0.0/8"}, "ranges: must be a list"),
    ({"network_interface": None}, "network_interface: required"),
    ({"network_interface": 'nm0"; drop'}, "network_interface: 'nm0\"; drop' is not a valid interface name"),
    ({"interface": "eth0\naccept"}, "interface: 'eth0\\naccept' is not a valid interface name"),
    ({"interface": "eth0;"}, "interface: 'eth0;' is not a valid interface name"),
    ({"interface": "eth{0"}, "interface: 'eth{0' is not a valid interface name"),
    ({"interface": "eth 0"}, "interface: 'eth 0' is not a valid interface name"),
    ({"interface": "eth\u00e90"}, "interface: 'eth\u00e90' is not a valid interface name"),
    ({"interface": "a" * 16}, "interface: '" + "a" * 16 + "' is not a valid interface name"),
    ({"interface": ".."}, "interface: '..' is not a valid interface name"),
    ({"networks": [{"name": "a b", "cidr": "100.64.0.0/24"}]}, "networks[0].name: 'a b' is not a valid name"),
    ({"networks": [{"name": 'x"}', "cidr": "100.64.0.0/24"}]}, "networks[0].name:"),
    ({"networks": [{"name": "a", "cidr": "100.64.0.0/24"}, {"name": "a", "cidr": "100.65.0.0/24"}]},
     "networks[1].name: 'a' is used twice"),
    ({"networks": [{"name": "a", "cidr": []}]}, "networks[0].cidr: at least one CIDR is required"),
    ({"networks": [{"name": "a", "cidr": ["100.64.0.0/24", "x"]}]}, "networks[0].cidr[1]: 'x' is not a valid CIDR"),
    ({"networks": [{"name": "a", "cidr": "100.64.0.0/24", "ranges": ["10.0.0.0/8", "2001:db8::/32"]}]},
     "networks[0].ranges[1]: 2001:db8::/32 is ipv6 but network a has no ipv6 cidr"),
    ({"networks": [{"name": "a", "cidr": "100.64.0.0/24", "extra": 1}]}, "networks[0]: unknown key(s) extra"),
    ({"networks": ["a"]}, "networks[0]: must be a dict"),
    ({"reverse_nat": True, "ranges": ["10.0.0.0/8"]}, "reverse_nat: needs networks"),
])
def test_bad_input_names_the_field(params, message):
    with pytest.raises(InputError) as error:
        validate(dict(BASE, **params))
    assert message in str(error.value)


def test_ranges_are_normalised_deduplicated_and_include_network_ranges():
    config = validate(dict(BASE, ranges=["10.1.2.3/8", "10.0.0.0/8", "2001:DB8::/32", "192.0.2.7"],
                           networks=[{"name": "a", "cidr": "100.64.0.0/24", "ranges": ["198.51.100.0/24"]}]))
    assert config.ranges == ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32", "198.51.100.0/24")
    assert config.field_of("198.51.100.0/24") == "networks[0].ranges[0]"
    assert config.field_of("2001:db8::/32") == "ranges[1]"


def test_network_interface_optional_for_absent():
    assert validate({"ranges": []}, require_network_interface=False).network_interface is None


def test_sysctls_only_for_families_in_use():
    assert desired_sysctls(("10.0.0.0/8",)) == {"net.ipv4.ip_forward": "1"}
    assert desired_sysctls(("2001:db8::/32",)) == {"net.ipv6.conf.all.forwarding": "1"}
    assert desired_sysctls(()) == {}


def test_route_probes_never_cross_families_and_skip_ipv6_anycast():
    def texts(cidr):
        return [address_text(family, value) for family, value in route_probes(cidr)]

    assert texts("10.0.0.0/8") == ["10.0.0.0", "10.255.255.255"]
    assert texts("2001:db8::/64") == ["2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff"]
    assert texts("192.0.2.7/32") == ["192.0.2.7"]


def test_collapse_merges_overlaps_and_neighbours():
    assert collapse(["10.0.1.0/24", "10.0.0.0/24", "10.0.0.128/25"]) == ("10.0.0.0/23",)


def test_plan_groups_ranges_by_family_and_interface():
    config = validate(dict(BASE, ranges=["10.0.0.0/8", "192.0.2.0/24", "10.1.0.0/16", "2001:db8::/32"]))
    plan = build_plan(config, {"10.0.0.0/8": "eth1", "192.0.2.0/24": "eth2", "10.1.0.0/16": "eth1",
                               "2001:db8::/32": "eth1"})
    assert [(p.family, p.interface, p.destinations) for p in plan.paths] == [
        ("ipv4", "eth1", ("10.0.0.0/8",)), ("ipv4", "eth2", ("192.0.2.0/24",)), ("ipv6", "eth1", ("2001:db8::/32",))]
    assert plan.families == ("ipv4", "ipv6") and not plan.segmented
