"""The mesh clients' routes: inventory of the gateways -> routes (tables of cases) and errors; the whole
mesh's planning checks (filter egress_mesh_plan)."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.netkit.egress.plugins.filter.egress_client_routes import (
    egress_client_routes, egress_mesh_plan)

ADDRESSES = {"gw": ["10.100.0.1", "fd00:100::1"], "gw2": ["10.100.0.2"]}
# gw3 has one address in each of two networks on one interface, both families.
TWO_NETWORKS = {"gw3": {"networks": [
    {"name": "eng", "cidr": ["100.64.1.0/24", "fd00:1::/64"], "ranges": ["192.168.50.0/24", "2001:db8:50::/64"]},
    {"name": "fin", "cidr": ["100.64.2.0/24", "fd00:2::/64"], "ranges": ["192.168.60.0/24", "2001:db8:60::/64"]}]}}
GW3 = {"gw3": ["100.64.1.1", "100.64.2.1", "fd00:1::1", "fd00:2::1"]}
ENG_MEMBER, FIN_MEMBER = ["100.64.1.11", "fd00:1::11"], ["100.64.2.11/24", "fd00:2::11/64"]


def route(destination, via):
    return {"destination": destination, "via": via, "dev": "nm0", "metric": 100}


@pytest.mark.parametrize("gateways, routes, problems", [
    # Without exclusions: one route per range as the gateway validates it (normalised, deduplicated).
    ({"gw": {"ranges": ["192.168.50.0/24", "2001:DB8:50::/64", "10.1.2.3/8", "192.168.50.0/24"]}},
     [route("192.168.50.0/24", "10.100.0.1"), route("2001:db8:50::/64", "fd00:100::1"),
      route("10.0.0.0/8", "10.100.0.1")], []),
    # Excluded parts are cut out of every range, in both families.
    ({"gw": {"ranges": ["192.168.50.0/24", "2001:db8:50::/64"],
             "excluded_ranges": ["192.168.50.128/25", "2001:db8:50:0:8000::/65"]}},
     [route("192.168.50.0/25", "10.100.0.1"), route("2001:db8:50::/65", "fd00:100::1")], []),
    ({"gw": {"ranges": ["10.0.0.0/22"], "excluded_ranges": ["10.0.1.0/24", "2001:db8::/32"]}},
     [route("10.0.0.0/24", "10.100.0.1"), route("10.0.2.0/23", "10.100.0.1")], []),
    # A gateway without an address of a family: a problem per range, no route.
    ({"gw2": {"ranges": ["203.0.113.0/24", "2001:db8:2::/64"]}},
     [route("203.0.113.0/24", "10.100.0.2")],
     ["gw2: no IPv6 address on its network interface for range 2001:db8:2::/64 (set egress_gateway_address)"]),
    # Nested ranges on two gateways: both routes, the longest prefix wins in the kernel.
    ({"gw": {"ranges": ["10.0.0.0/8"]}, "gw2": {"ranges": ["10.1.0.0/16"]}, "gw3": {}},
     [route("10.0.0.0/8", "10.100.0.1"), route("10.1.0.0/16", "10.100.0.2")], []),
    # The same range on two gateways: refused naming both (the first gateway's route is the only one).
    ({"gw": {"ranges": ["192.168.50.0/24"]}, "gw2": {"ranges": ["10.9.0.0/16", "192.168.50.0/24"]}},
     [route("192.168.50.0/24", "10.100.0.1"), route("10.9.0.0/16", "10.100.0.2")],
     ["192.168.50.0/24 is offered by gw (egress_gateway_ranges[0], via 10.100.0.1) and by gw2 "
      "(egress_gateway_ranges[1], via 10.100.0.2): a member has one route per destination, so keep the range on "
      "one gateway (a longer prefix elsewhere wins by longest prefix)"]),
    # ... also when exclusions leave the same piece on both.
    ({"gw": {"ranges": ["10.0.0.0/24"], "excluded_ranges": ["10.0.0.128/25"]}, "gw2": {"ranges": ["10.0.0.0/25"]}},
     [route("10.0.0.0/25", "10.100.0.1")],
     ["10.0.0.0/25 is offered by gw (egress_gateway_ranges[0], via 10.100.0.1) and by gw2 "
      "(egress_gateway_ranges[0], via 10.100.0.2): a member has one route per destination, so keep the range on "
      "one gateway (a longer prefix elsewhere wins by longest prefix)"]),
    # Internet gateway: the default routes of both families, the gateway's LAN as a range too (longer prefix).
    ({"gw": {"ranges": ["0.0.0.0/0", "::/0", "192.168.50.0/24"]}},
     [route("0.0.0.0/0", "10.100.0.1"), route("::/0", "fd00:100::1"), route("192.168.50.0/24", "10.100.0.1")], []),
])
def test_routes_from_the_gateways_inventory(gateways, routes, problems):
    assert egress_client_routes(gateways, ADDRESSES, "nm0", 100) == {"routes": routes, "problems": problems}


@pytest.mark.parametrize("member_addresses, gateways, addresses, routes, problems", [
    # A member of eng routes eng's ranges via gw3's address inside eng's cidr, of each family; nothing of fin.
    (ENG_MEMBER, TWO_NETWORKS, GW3,
     [route("192.168.50.0/24", "100.64.1.1"), route("2001:db8:50::/64", "fd00:1::1")], []),
    (FIN_MEMBER, TWO_NETWORKS, GW3,
     [route("192.168.60.0/24", "100.64.2.1"), route("2001:db8:60::/64", "fd00:2::1")], []),
    # Per family: an IPv6 address outside eng's IPv6 cidr gets no IPv6 route (the gateway would drop it).
    (["100.64.1.11", "fd00:9::11"], TWO_NETWORKS, GW3, [route("192.168.50.0/24", "100.64.1.1")], []),
    # A member in no network of a segmented gateway: no routes to it, no problem.
    (["10.100.0.11"], TWO_NETWORKS, GW3, [], []),
    # The network's own address wins over the one found on the interface.
    (FIN_MEMBER, {"gw3": {"networks": [dict(TWO_NETWORKS["gw3"]["networks"][1], address=["100.64.2.254"])]}}, GW3,
     [route("192.168.60.0/24", "100.64.2.254"), route("2001:db8:60::/64", "fd00:2::1")], []),
    # No address of the gateway inside the network's cidr: a problem naming the variable to set.
    (FIN_MEMBER, TWO_NETWORKS, {"gw3": ["100.64.1.1", "fd00:1::1", "fd00:2::1"]},
     [route("2001:db8:60::/64", "fd00:2::1")],
     ["gw3: no IPv4 address inside network fin's cidr 100.64.2.0/24 for its ranges "
      "(set egress_gateway_networks[1].address)"]),
    # The top-level ranges of a segmented gateway are dropped by it for everybody: nobody routes them.
    (ENG_MEMBER, {"gw3": dict(TWO_NETWORKS["gw3"], ranges=["10.0.0.0/8"])}, GW3,
     [route("192.168.50.0/24", "100.64.1.1"), route("2001:db8:50::/64", "fd00:1::1")], []),
    # One range in two networks of one gateway, a member in both: two next hops for one destination.
    (["100.64.1.11", "100.64.2.11"],
     {"gw3": {"networks": [{"name": "eng", "cidr": "100.64.1.0/24", "ranges": ["192.168.70.0/24"]},
                           {"name": "fin", "cidr": "100.64.2.0/24", "ranges": ["192.168.70.0/24"]}]}}, GW3,
     [route("192.168.70.0/24", "100.64.1.1")],
     ["192.168.70.0/24 is offered by gw3 (egress_gateway_networks[0].ranges[0], via 100.64.1.1) and by gw3 "
      "(egress_gateway_networks[1].ranges[0], via 100.64.2.1): a member has one route per destination, so keep "
      "the range on one gateway (a longer prefix elsewhere wins by longest prefix)"]),
    # The same range for two networks on two gateways: each member routes its own network's: no conflict.
    (FIN_MEMBER, {"gw3": TWO_NETWORKS["gw3"], "gw4": {"networks": [
        {"name": "eng", "cidr": "100.64.1.0/24", "ranges": ["192.168.60.0/24"]}]}}, dict(GW3, gw4=["100.64.1.4"]),
     [route("192.168.60.0/24", "100.64.2.1"), route("2001:db8:60::/64", "fd00:2::1")], []),
])
def test_a_member_routes_only_its_own_networks_ranges(member_addresses, gateways, addresses, routes, problems):
    assert egress_client_routes(gateways, addresses, "nm0", 100, member_addresses) == {
        "routes": routes, "problems": problems}


@pytest.mark.parametrize("gateways, message", [
    ({"gw": {"ranges": ["192.168.50.0/24", "10.0.0.0/33"]}},
     "egress_client_routes: gw: egress_gateway_ranges[1]: '10.0.0.0/33' is not a valid CIDR"),
    ({"gw": {"excluded_ranges": ["nonsense"]}},
     "egress_client_routes: gw: egress_gateway_excluded_ranges[0]: 'nonsense' is not a valid CIDR"),
    ({"gw": {"excluded_ranges": "10.0.0.0/8"}}, "gw: egress_gateway_excluded_ranges: must be a list"),
    ({"gw": {"networks": [{"name": "a", "cidr": "100.64.0.0/24", "ranges": ["2001:db8::/32"]}]}},
     "gw: egress_gateway_networks[0].ranges[0]: 2001:db8::/32 is ipv6 but network a has no ipv6 cidr"),
    ({"gw": {"networks": [{"name": "a", "cidr": "100.64.0.0/24", "ranges": [], "address": "100.64.9.1"}]}},
     "gw: egress_gateway_networks[0].address: '100.64.9.1' is not inside the network's cidr 100.64.0.0/24"),
    ({"gw": {"networks": [{"name": "a", "cidr": "100.64.0.0/24", "ranges": [], "address": ["fd00::1"]}]}},
     "gw: egress_gateway_networks[0].address[0]: 'fd00::1' is not inside the network's cidr "
     "(the network has no ipv6 cidr)"),
    ({"gw": {"networks": [{"name": "a", "cidr": "100.64.0.0/24", "ranges": [],
                           "address": ["100.64.0.1", "100.64.0.2"]}]}},
     "gw: egress_gateway_networks[0].address[1]: '100.64.0.2' is a second ipv4 address (one per family: "
     "100.64.0.1)"),
    ({"gw": {"networks": [{"name": "a", "cidr": "100.64.0.0/24", "ranges": [], "address": "gateway"}]}},
     "gw: egress_gateway_networks[0].address: 'gateway' is not a valid IP address"),
    ({"gw": {"networks": [{"name": "a", "cidr": "100.64.0.0/24", "ranges": [], "gateway": "100.64.0.1"}]}},
     "gw: egress_gateway_networks[0]: unknown key(s) gateway (expected name, cidr, ranges, address)"),
])
def test_bad_inventory_names_the_gateway_and_the_variable(gateways, message):
    with pytest.raises(AnsibleFilterError) as error:
        egress_client_routes(gateways, ADDRESSES, "nm0", 100)
    assert message in str(error.value)


def member(addresses, **settings):
    return dict({"state": "present", "interface": "nm0", "metric": 100, "addresses": addresses}, **settings)


def test_mesh_plan_routes_every_member_and_reports_every_problem_of_the_inventory():
    gateways = {
        "gw3": dict(TWO_NETWORKS["gw3"], interface="nm0", interface_addresses=[a + "/24" for a in GW3["gw3"]]),
        "gw": {"ranges": ["192.168.60.0/24"], "interface": "nm0", "interface_addresses": ["100.64.2.2/24"]},
        "bad": {"ranges": ["10.0.0.0/33"]},
        "gone": {"state": "absent", "ranges": ["192.168.60.0/24"], "interface_addresses": ["100.64.2.3"]},
        "typo": {"networks": [{"name": "x", "cidr": "100.64.3.0/24", "address": "100.64.3.9"}],
                 "interface": "nm0", "interface_addresses": ["100.64.3.1/24"]},
    }
    members = {"e1": member(ENG_MEMBER), "f1": member(FIN_MEMBER), "off": member([], state="absent")}
    plan = egress_mesh_plan(gateways, members)
    assert plan["routes"] == {
        "e1": [route("192.168.50.0/24", "100.64.1.1"), route("2001:db8:50::/64", "fd00:1::1"),
               route("192.168.60.0/24", "100.64.2.2")],
        "f1": [route("192.168.60.0/24", "100.64.2.1"), route("2001:db8:60::/64", "fd00:2::1")],
        "off": []}
    assert plan["problems"] == [
        "bad: egress_gateway_ranges[0]: '10.0.0.0/33' is not a valid CIDR",
        "typo: egress_gateway_networks[0].address: 100.64.3.9 is not an address of its network interface nm0 "
        "(100.64.3.1)",
        "f1: 192.168.60.0/24 is offered by gw3 (egress_gateway_networks[1].ranges[0], via 100.64.2.1) and by gw "
        "(egress_gateway_ranges[0], via 100.64.2.2): a member has one route per destination, so keep the range on "
        "one gateway (a longer prefix elsewhere wins by longest prefix)"]


@pytest.mark.parametrize("address, problem", [
    (5, "gw: egress_gateway_address: 5 is not an address or a list of addresses"),
    ({"ip": "10.100.0.1"}, "gw: egress_gateway_address: {'ip': '10.100.0.1'} is not an address or a list of addresses"),
    (["10.100.0.1", "gateway"], "gw: egress_gateway_address[1]: 'gateway' is not a valid IP address"),
    ([7], "gw: egress_gateway_address[0]: 7"),
])
def test_mesh_plan_refuses_a_gateway_address_that_is_not_an_address(address, problem):
    gateways = {"gw": {"ranges": ["192.168.50.0/24"], "address": address, "interface_addresses": ["10.100.0.1"]}}
    plan = egress_mesh_plan(gateways, {"m1": member(["10.100.0.9"])})
    assert len(plan["problems"]) == 1 and plan["problems"][0].startswith(problem)
    assert plan["routes"] == {"m1": []}


def test_mesh_plan_takes_a_gateway_address_with_or_without_prefix_length():
    for address in ("10.100.0.5/24", ["10.100.0.5"]):
        gateways = {"gw": {"ranges": ["192.168.50.0/24"], "address": address, "interface_addresses": ["10.100.0.1"]}}
        plan = egress_mesh_plan(gateways, {"m1": member(["10.100.0.9"])})
        assert plan == {"routes": {"m1": [route("192.168.50.0/24", "10.100.0.5")]}, "problems": []}


def test_mesh_plan_a_gateway_that_is_a_member_skips_its_own_ranges():
    gateways = {"gw": {"ranges": ["192.168.50.0/24"], "interface_addresses": ["10.100.0.1"]},
                "gw2": {"ranges": ["203.0.113.0/24"], "interface_addresses": ["10.100.0.2"]}}
    plan = egress_mesh_plan(gateways, {"gw2": member(["10.100.0.2"])})
    assert plan == {"routes": {"gw2": [route("192.168.50.0/24", "10.100.0.1")]}, "problems": []}


def test_mesh_plan_validates_each_gateway_once_whatever_the_number_of_members(monkeypatch):
    """The plan's cost grows with ranges plus members, not ranges times members (10,000 ranges, 50 members)."""
    from ansible_collections.netkit.egress.plugins.plugin_utils import _egress_client_routes as planner
    validated = []
    real_validate = planner.validate
    monkeypatch.setattr(planner, "validate",
                        lambda *args, **kwargs: validated.append(1) or real_validate(*args, **kwargs))
    gateways = {"gw": {"ranges": ["192.168.50.0/24"], "interface_addresses": ["10.100.0.1"]},
                "gw2": {"ranges": ["203.0.113.0/24"], "interface_addresses": ["10.100.0.2"]}}
    members = {f"m{index}": member([f"10.100.1.{index}"]) for index in range(5)}
    plan = egress_mesh_plan(gateways, members)
    assert plan["routes"]["m4"] == [route("192.168.50.0/24", "10.100.0.1"), route("203.0.113.0/24", "10.100.0.2")]
    assert len(validated) == 2


def test_internet_ranges_only_for_members_that_route_the_internet():
    """A member with internet=False (a WireGuard mesh member that did not opt in) keeps its own default routes;
    the gateway's other ranges still get routes."""
    gateways = {"gw": {"ranges": ["0.0.0.0/0", "::/0", "192.168.50.0/24"]}}
    everything = egress_client_routes(gateways, ADDRESSES, "nm0")
    assert [r["destination"] for r in everything["routes"]] == ["0.0.0.0/0", "::/0", "192.168.50.0/24"]
    lan_only = egress_client_routes(gateways, ADDRESSES, "nm0", 100, [], False)
    assert lan_only == {"routes": [route("192.168.50.0/24", "10.100.0.1")], "problems": []}
    planned = egress_mesh_plan({"gw": dict(gateways["gw"], interface_addresses=ADDRESSES["gw"])},
                               {"m1": {"interface": "nm0", "internet": False}, "m2": {"interface": "nm0"}})
    assert [r["destination"] for r in planned["routes"]["m1"]] == ["192.168.50.0/24"]
    assert [r["destination"] for r in planned["routes"]["m2"]] == ["0.0.0.0/0", "::/0", "192.168.50.0/24"]


def test_mesh_plan_with_hostvars_checks_the_other_role_variables_against_the_roles_argument_spec():
    gateways = {"gw": {"ranges": ["192.168.50.0/24"], "interface_addresses": ["10.100.0.1"]},
                "gw2": {"ranges": ["203.0.113.0/24"], "interface_addresses": ["10.100.0.2"]}}
    members = {"m1": member(["10.100.0.9"])}
    # The lists are mesh_plan's: a bad range is its problem, named by element, not the argument spec's.
    hostvars = {"gw": {"egress_gateway_backend": "nft", "egress_gateway_nat": "maybe",
                       "egress_gateway_ranges": ["10.0.0.0/33"], "unrelated": object()},
                "gw2": {"egress_gateway_backend": "iptables", "egress_gateway_persist": "yes"}}
    plan = egress_mesh_plan(gateways, members, hostvars)
    assert plan["routes"] == egress_mesh_plan(gateways, members)["routes"]
    assert len(plan["problems"]) == 1
    problem = plan["problems"][0]
    assert problem.startswith("gw: options of the role netkit.egress.egress_gateway: ")
    assert "egress_gateway_backend must be one of: auto, nftables, iptables, got: nft" in problem
    assert "egress_gateway_nat" in problem and "ranges" not in problem
    assert egress_mesh_plan(gateways, members, {"gw": {}, "gw2": {"egress_gateway_nat": False}})["problems"] == []
