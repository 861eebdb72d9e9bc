"""The mesh clients' routes: inventory of the gateways -> routes (a table of cases) and errors."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.netkit.egress.plugins.filter.egress_client_routes import egress_client_routes

ADDRESSES = {"gw": ["10.100.0.1", "fd00:100::1"], "gw2": ["10.100.0.2"]}


def route(destination, via):
    return {"destination": destination, "via": via, "dev": "nm0", "metric": 100}


@pytest.mark.parametrize("gateways, routes, problems", [
    # Without exclusions: one route per range as the gateway validates it (normalised, deduplicated).
    ({"gw": {"ranges": ["192.168.50.0/24", "2001:DB8:50::/64", "10.1.2.3/8", "192.168.50.0/24"]}},
     [route("192.168.50.0/24", "10.100.0.1"), route("2001:db8:50::/64", "fd00:100::1"),
      route("10.0.0.0/8", "10.100.0.1")], []),
    # Overlapping ranges stay separate routes (as before the filter); the networks' ranges come after.
    ({"gw": {"ranges": ["10.0.0.0/8"],
             "networks": [{"name": "a", "cidr": "100.64.0.0/24", "ranges": ["10.1.0.0/16"]}]}},
     [route("10.0.0.0/8", "10.100.0.1"), route("10.1.0.0/16", "10.100.0.1")], []),
    # Excluded parts are cut out of every range, in both families.
    ({"gw": {"ranges": ["192.168.50.0/24", "2001:db8:50::/64"],
             "excluded_ranges": ["192.168.50.128/25", "2001:db8:50:0:8000::/65"]}},
     [route("192.168.50.0/25", "10.100.0.1"), route("2001:db8:50::/65", "fd00:100::1")], []),
    ({"gw": {"ranges": ["10.0.0.0/22"], "excluded_ranges": ["10.0.1.0/24", "2001:db8::/32"]}},
     [route("10.0.0.0/24", "10.100.0.1"), route("10.0.2.0/23", "10.100.0.1")], []),
    # Exclusions apply to the networks' ranges too; a wholly excluded range gets no route and no problem.
    ({"gw2": {"networks": [{"name": "a", "cidr": ["100.64.0.0/24", "fd00::/64"],
                            "ranges": ["203.0.113.0/24", "2001:db8:1::/64"]}],
              "excluded_ranges": ["203.0.113.0/25", "2001:db8:1::/48"]}},
     [route("203.0.113.128/25", "10.100.0.2")], []),
    # A gateway without an address of a family: a problem per range, no route.
    ({"gw2": {"ranges": ["203.0.113.0/24", "2001:db8:2::/64"]}},
     [route("203.0.113.0/24", "10.100.0.2")],
     ["gw2: no IPv6 address on its network interface for range 2001:db8:2::/64 (set egress_gateway_address)"]),
    # Several gateways, in the order given; no ranges, no routes.
    ({"gw": {"ranges": ["192.168.50.0/24"]}, "gw2": {"ranges": ["192.168.50.0/24"]}, "gw3": {}},
     [route("192.168.50.0/24", "10.100.0.1"), route("192.168.50.0/24", "10.100.0.2")], []),
])
def test_routes_from_the_gateways_inventory(gateways, routes, problems):
    assert egress_client_routes(gateways, ADDRESSES, "nm0", 100) == {"routes": routes, "problems": problems}


@pytest.mark.parametrize("gateways, message", [
    ({"gw": {"ranges": ["192.168.50.0/24", "10.0.0.0/33"]}},
     "egress_client_routes: gw: egress_gateway_ranges[1]: '10.0.0.0/33' is not a valid CIDR"),
    ({"gw": {"excluded_ranges": ["nonsense"]}},
     "egress_client_routes: gw: egress_gateway_excluded_ranges[0]: 'nonsense' is not a valid CIDR"),
    ({"gw": {"excluded_ranges": "10.0.0.0/8"}}, "gw: egress_gateway_excluded_ranges: must be a list"),
    ({"gw": {"networks": [{"name": "a", "cidr": "100.64.0.0/24", "ranges": ["2001:db8::/32"]}]}},
     "gw: egress_gateway_networks[0].ranges[0]: 2001:db8::/32 is ipv6 but network a has no ipv6 cidr"),
])
def test_bad_inventory_names_the_gateway_and_the_variable(gateways, message):
    with pytest.raises(AnsibleFilterError) as error:
        egress_client_routes(gateways, ADDRESSES, "nm0", 100)
    assert message in str(error.value)
