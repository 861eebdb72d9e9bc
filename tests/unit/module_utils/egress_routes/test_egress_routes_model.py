"""Pure route logic: validation, the kernel's JSON, desired-versus-current plans, ip -batch lines."""

import pytest

from ansible_collections.netkit.egress.plugins.module_utils._egress_routes.model import (
    Route, plan_routes, render_commands, split_kernel_routes, validate_protocol, validate_routes, validate_table)
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError

GW4 = "10.100.0.1"
GW6 = "fd00:100::1"


def r(destination, via=GW4, dev="nm0", metric=100):
    return Route(destination, via, dev, metric)


# ---- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize("entry, expected", [
    ({"destination": "192.168.50.0/24", "via": GW4}, Route("192.168.50.0/24", GW4, None, 100)),
    ({"destination": "192.168.50.7/24", "via": GW4, "dev": "nm0"}, Route("192.168.50.0/24", GW4, "nm0", 100)),
    ({"destination": "2001:DB8:50:0::/64", "via": "FD00:100:0::1"}, Route("2001:db8:50::/64", GW6, None, 100)),
    ({"destination": "10.1.1.1", "via": GW4, "metric": 7}, Route("10.1.1.1/32", GW4, None, 7)),
    ({"destination": "2001:db8::/32", "via": GW6, "metric": 0}, Route("2001:db8::/32", GW6, None, 1024)),
    ({"destination": "198.51.100.0/24", "dev": "wg-mesh.1"}, Route("198.51.100.0/24", None, "wg-mesh.1", 100)),
])
def test_valid_routes_are_canonical(entry, expected):
    assert validate_routes([entry]) == [expected]


@pytest.mark.parametrize("entry, message", [
    ({"destination": "10.0.0.0/33", "via": GW4}, "routes[0].destination: '10.0.0.0/33' is not a valid CIDR"),
    ({"via": GW4}, "routes[0].destination: is required"),
    ({"destination": "10.0.0.0/8", "via": GW6}, "routes[0].via: 'fd00:100::1' is not an IPv4 address"),
    ({"destination": "2001:db8::/32", "via": GW4}, "routes[0].via: '10.100.0.1' is not an IPv6 address"),
    ({"destination": "10.0.0.0/8", "via": "gateway"}, "routes[0].via: 'gateway' is not an IP address"),
    ({"destination": "10.0.0.0/8", "via": GW4, "dev": "nm0; ip route flush"}, "routes[0].dev: 'nm0; ip route flush'"),
    ({"destination": "10.0.0.0/8", "via": GW4, "dev": "a-very-long-interface"}, "routes[0].dev:"),
    ({"destination": "10.0.0.0/8", "via": GW4, "dev": ".."}, "routes[0].dev: '..'"),
    ({"destination": "10.0.0.0/8"}, "routes[0]: needs via, dev or both"),
    ({"destination": "2001:db8::/32", "via": "fe80::1"}, "routes[0].dev: is required with the link-local"),
    ({"destination": "10.0.0.0/8", "via": GW4, "metric": -1}, "routes[0].metric: -1 is not a metric"),
    ({"destination": "10.0.0.0/8", "via": GW4, "table": 5}, "routes[0]: unknown key(s) table"),
    ("10.0.0.0/8", "routes[0]: expected a dict"),
])
def test_bad_route_names_the_field(entry, message):
    with pytest.raises(InputError) as error:
        validate_routes([entry])
    assert message in str(error.value)


def test_routes_to_remove_need_no_next_hop():
    assert validate_routes([{"destination": "192.0.2.0/24"}], require_next_hop=False) == [
        Route("192.0.2.0/24", None, None, 100)]


def test_error_index_counts_from_the_whole_list():
    with pytest.raises(InputError, match=r"routes\[2\]\.destination: '10\.0\.0\.0/33'"):
        validate_routes([{"destination": "192.0.2.0/24", "via": GW4}, {"destination": "198.51.100.0/24", "via": GW4},
                         {"destination": "10.0.0.0/33", "via": GW4}])


def test_two_routes_with_one_destination_and_metric_is_an_error():
    with pytest.raises(InputError, match=r"routes\[1\]: 192\.0\.2\.0/24 metric 100 is already routes\[0\]"):
        validate_routes([{"destination": "192.0.2.0/24", "via": GW4},
                         {"destination": "192.0.2.9/24", "via": "10.100.0.2"}])


def test_identical_duplicates_are_one_route():
    assert validate_routes([{"destination": "192.0.2.0/24", "via": GW4},
                            {"destination": "192.0.2.9/24", "via": GW4, "metric": 100}]) == [r("192.0.2.0/24", dev=None)]


def test_same_destination_with_other_metric_is_fine():
    assert len(validate_routes([{"destination": "192.0.2.0/24", "via": GW4},
                                {"destination": "192.0.2.0/24", "via": GW4, "metric": 200}])) == 2


@pytest.mark.parametrize("table, expected", [("main", "main"), ("254", "main"), ("100", "100"), (" 7 ", "7")])
def test_tables(table, expected):
    assert validate_table(table) == expected


@pytest.mark.parametrize("table", ["local", "255", "0", "-1", "4294967296", "main; reboot"])
def test_bad_tables(table):
    with pytest.raises(InputError, match=r"^table: "):
        validate_table(table)


@pytest.mark.parametrize("protocol", [0, 3, 4, 256, -1, True])
def test_bad_protocols(protocol):
    with pytest.raises(InputError, match=r"^protocol: "):
        validate_protocol(protocol)


# ---- the kernel's JSON (ip -N -j route show table main) -----------------------------------------
KERNEL_V4 = [
    {"dst": "default", "gateway": "10.9.0.1", "dev": "nm0", "protocol": "201", "metric": 7, "flags": []},
    {"dst": "10.9.0.0/24", "dev": "nm0", "protocol": "2", "scope": "253", "prefsrc": "10.9.0.2", "flags": []},
    {"dst": "192.168.50.0/24", "gateway": "10.9.0.1", "dev": "nm0", "protocol": "4", "metric": 50, "flags": []},
    {"dst": "192.168.50.0/24", "gateway": "10.9.0.1", "dev": "nm0", "protocol": "201", "metric": 100, "flags": []},
    {"dst": "192.168.53.0/24", "gateway": "10.9.0.1", "dev": "nm0", "flags": []},
    {"dst": "192.168.54.5", "gateway": "10.9.0.1", "dev": "nm0", "protocol": "201", "flags": []},
    {"type": "blackhole", "dst": "192.168.56.0/24", "protocol": "201", "flags": []},
]


def test_split_kernel_routes_by_protocol():
    ours, foreign = split_kernel_routes(KERNEL_V4, "ipv4", 201)
    assert ours == [Route("0.0.0.0/0", "10.9.0.1", "nm0", 7), Route("192.168.50.0/24", "10.9.0.1", "nm0", 100),
                    Route("192.168.54.5/32", "10.9.0.1", "nm0", 0)]
    assert Route("192.168.50.0/24", "10.9.0.1", "nm0", 50) in foreign
    # iproute2 prints no protocol for boot routes: never ours.
    assert Route("192.168.53.0/24", "10.9.0.1", "nm0", 0) in foreign


def test_split_kernel_routes_ipv6_default():
    entries = [{"dst": "default", "gateway": "FD00:9::1", "dev": "nm0", "protocol": "201", "metric": 1024,
                "flags": [], "pref": "medium"}]
    assert split_kernel_routes(entries, "ipv6", 201) == ([Route("::/0", "fd00:9::1", "nm0", 1024)], [])


# ---- planning ------------------------------------------------------------------------------
OFFICE4 = r("192.168.50.0/24")
OFFICE6 = r("2001:db8:50::/64", via=GW6)
LAB = r("198.51.100.0/24")


def test_present_on_empty_host_adds_everything():
    plan = plan_routes([OFFICE6, OFFICE4], [], [], "present")
    assert plan.add == [OFFICE4, OFFICE6] and plan.remove == [] and plan.after == [OFFICE4, OFFICE6]
    assert render_commands(plan, "main", 201) == [
        "route replace 192.168.50.0/24 via 10.100.0.1 dev nm0 metric 100 table main proto 201",
        "route replace 2001:db8:50::/64 via fd00:100::1 dev nm0 metric 100 table main proto 201",
    ]


def test_converged_host_needs_nothing():
    for state in ("present", "exact"):
        plan = plan_routes([OFFICE4, OFFICE6], [OFFICE6, OFFICE4], [], state)
        assert render_commands(plan, "main", 201) == []
        assert plan.after == [OFFICE4, OFFICE6]


def test_unset_dev_accepts_the_kernels_choice():
    wanted = Route("192.168.50.0/24", GW4, None, 100)
    assert render_commands(plan_routes([wanted], [OFFICE4], [], "exact"), "main", 201) == []


def test_changed_next_hop_is_replaced_in_place():
    moved = r("192.168.50.0/24", via="10.100.0.2")
    plan = plan_routes([moved], [OFFICE4], [], "exact")
    assert plan.add == [moved] and plan.remove == [OFFICE4] and plan.after == [moved]
    assert render_commands(plan, "main", 201) == [
        "route replace 192.168.50.0/24 via 10.100.0.2 dev nm0 metric 100 table main proto 201"]


def test_present_keeps_our_other_routes_exact_removes_them():
    present = plan_routes([OFFICE4], [OFFICE4, LAB], [], "present")
    assert present.remove == [] and present.after == [OFFICE4, LAB]
    exact = plan_routes([OFFICE4], [OFFICE4, LAB], [], "exact")
    assert exact.remove == [LAB] and exact.after == [OFFICE4]
    assert render_commands(exact, "100", 201) == [
        "route del 198.51.100.0/24 via 10.100.0.1 dev nm0 metric 100 table 100 proto 201"]


def test_new_metric_is_a_new_route_and_the_old_one_goes_in_exact():
    lower = r("192.168.50.0/24", metric=50)
    plan = plan_routes([lower], [OFFICE4], [], "exact")
    assert render_commands(plan, "main", 201) == [
        "route del 192.168.50.0/24 via 10.100.0.1 dev nm0 metric 100 table main proto 201",
        "route replace 192.168.50.0/24 via 10.100.0.1 dev nm0 metric 50 table main proto 201",
    ]


def test_exact_with_nothing_removes_all_of_ours():
    plan = plan_routes([], [OFFICE4, OFFICE6], [LAB], "exact")
    assert plan.remove == [OFFICE4, OFFICE6] and plan.after == []


def test_absent_removes_only_ours_matched_by_destination_and_metric():
    foreign_office = r("192.168.50.0/24", metric=100)
    plan = plan_routes([Route("192.168.50.0/24", None, "nm0", 100), LAB], [OFFICE6], [foreign_office], "absent")
    assert plan.remove == [] and plan.after == [OFFICE6]
    plan = plan_routes([Route("192.168.50.0/24", None, "nm0", 100)], [OFFICE4, OFFICE6], [], "absent")
    assert plan.remove == [OFFICE4] and plan.after == [OFFICE6]


def test_foreign_route_with_same_destination_and_metric_is_a_conflict():
    foreign = r("192.168.50.0/24", via="10.100.0.254")
    with pytest.raises(InputError, match=r"routes\[1\]: a route to 192\.168\.50\.0/24 with metric 100 already "
                                         r"exists and was not created by this module"):
        plan_routes([OFFICE6, OFFICE4], [], [foreign], "exact")


def test_foreign_route_with_other_metric_is_no_conflict_and_stays():
    foreign = r("192.168.50.0/24", metric=0)
    plan = plan_routes([OFFICE4], [], [foreign], "exact")
    assert plan.remove == [] and plan.add == [OFFICE4]


def test_gathered_round_trips_as_input():
    plan = plan_routes([], [OFFICE6, OFFICE4], [LAB], "gathered")
    assert render_commands(plan, "main", 201) == []
    again = validate_routes([route.as_dict() for route in plan.after])
    assert plan_routes(again, plan.after, [], "exact").add == []
