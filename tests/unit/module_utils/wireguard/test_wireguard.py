"""_wireguard: the model's validation, the readers and the pure renderers (no host)."""

import dataclasses
import os

import pytest

from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.module_utils._wireguard import model, read, render

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "wireguard")
KEY_A = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
KEY_B = "z2t+7SIDos581VjxD0YyJd8DvCF2LzYVUyLCK0+msns="
OWN = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


@pytest.mark.parametrize("value, expected", [
    ("192.0.2.1:51820", "192.0.2.1:51820"),
    ("[2001:DB8::1]:51820", "[2001:db8::1]:51820"),
    ("VPN.Example.com:443", "vpn.example.com:443"),
])
def test_endpoints_are_canonical(value, expected):
    assert model.normalise_endpoint(value, "endpoint") == expected


@pytest.mark.parametrize("value, default_port, expected", [
    ("192.0.2.1", 51821, "192.0.2.1:51821"),
    ("2001:db8::1", None, None),
    ("[2001:db8::1]", 51820, "[2001:db8::1]:51820"),
])
def test_endpoint_default_port(value, default_port, expected):
    if expected is None:
        with pytest.raises(InputError, match="brackets"):
            model.normalise_endpoint(value, "endpoint", default_port)
    else:
        assert model.normalise_endpoint(value, "endpoint", default_port) == expected


@pytest.mark.parametrize("value", ["192.0.2.1", "192.0.2.1:0", "192.0.2.1:65536", "a b:1", "$(id):1", "x;y:1",
                                   "[2001:db8::1:1", "[192.0.2.1]:1", "-x:1", "1.2.3.999:1", ""])
def test_bad_endpoints_name_the_field(value):
    with pytest.raises(InputError) as error:
        model.normalise_endpoint(value, "peers[3].endpoint")
    assert str(error.value).startswith("peers[3].endpoint: ")


@pytest.mark.parametrize("value", [KEY_A[:-1], KEY_A + "=", "x" * 44, KEY_A[:-2] + "x=", 44, None, "a\n" + KEY_A[2:]])
def test_bad_keys(value):
    with pytest.raises(InputError, match="is not a WireGuard key"):
        model.validate_key(value, "public_key")


def test_peers_overlap_is_refused_naming_both_but_a_default_route_may_contain_others():
    peers = [{"public_key": KEY_A, "allowed_ips": ["0.0.0.0/0", "10.100.0.1/32"], "name": "gw"},
             {"public_key": KEY_B, "allowed_ips": ["10.100.0.12/32"]}]
    assert [peer.allowed_ips for peer in model.validate_peers(peers)] == [("0.0.0.0/0", "10.100.0.1/32"),
                                                                          ("10.100.0.12/32",)]
    peers[1]["allowed_ips"] = ["10.100.0.0/24"]
    with pytest.raises(InputError) as error:
        model.validate_peers(peers)
    assert str(error.value) == ("peers[1].allowed_ips[0]: '10.100.0.0/24' overlaps peers[0].allowed_ips[1] "
                                "10.100.0.1/32 (peer gw); a range belongs to one peer")
    peers[1]["allowed_ips"] = ["0.0.0.0/0"]
    with pytest.raises(InputError, match="overlaps peers.0..allowed_ips.0. 0.0.0.0/0"):
        model.validate_peers(peers)


@pytest.mark.parametrize("params, field", [
    ({"interface": "wg0 x"}, "interface"),
    ({"addresses": ["10.0.0.1/24", "10.0.0.2/24"]}, "addresses[1]"),
    ({"addresses": ["fd00::1/64\n"]}, "addresses[0]"),
    ({"listen_port": "x"}, "listen_port"),
    ({"fwmark": -1}, "fwmark"),
    ({"config_dir": "/etc/wire guard"}, "config_dir"),
    ({"private_key_file": "relative.key"}, "private_key_file"),
    ({"private_key_file": "/etc/../root/k"}, "private_key_file"),
    ({"peers": "not a list"}, "peers"),
    ({"peers": [{"public_key": KEY_A, "preshared_key": "x"}]}, "peers[0].preshared_key"),
    ({"peers": [{"allowed_ips": []}]}, "peers[0].public_key"),
    ({"peers": [{"public_key": KEY_A}], "internet_route": {"table": 1}}, "internet_route"),
    ({"peers": [{"public_key": KEY_A, "allowed_ips": ["0.0.0.0/0"]}], "internet_route": {"table": 254}},
     "internet_route.table"),
])
def test_bad_parameters_name_the_field(params, field):
    base = {"interface": "wg0", "state": "present"}
    with pytest.raises(InputError) as error:
        model.validate(dict(base, **params))
    assert error.value.field == field


def test_interface_addresses_keep_their_host_part_and_sort_ipv4_first():
    desired = model.validate({"interface": "wg0", "addresses": ["FD00:100::11/64", "10.100.0.11/24"]})
    assert desired.addresses == ("10.100.0.11/24", "fd00:100::11/64")
    assert desired.private_key_file == "/etc/wireguard/wg0.key" and desired.config_path == "/etc/wireguard/wg0.conf"


def test_dump_reader_drops_the_private_key():
    public_key, port, fwmark, peers = read.parse_dump(fixture("dump.txt"))
    assert (public_key, port, fwmark) == (OWN, 51820, 0)
    assert peers[KEY_A] == model.Peer(KEY_A, ("10.100.0.1/32", "192.168.50.0/24", "fd00:100::1/128"),
                                      "192.0.2.1:51820", 25)
    assert peers[KEY_B] == model.Peer(KEY_B, (), "[2001:db8::12]:51820", 0)
    assert "PRIVATEKEY" not in repr((public_key, port, fwmark, peers))


def desired_with(peers, **extra):
    return model.validate(dict({"interface": "wg0", "addresses": ["10.100.0.11/24"], "listen_port": 51820,
                                "peers": peers}, **extra))


def test_config_round_trip_and_no_secret():
    desired = desired_with([{"public_key": KEY_A, "endpoint": "192.0.2.1:51820", "name": "gw",
                             "allowed_ips": ["192.168.50.0/24", "10.100.0.1/32", "0.0.0.0/0"],
                             "persistent_keepalive": 25}], internet_route={"fail_open": False}, forwarding=True)
    text = render.config_text(desired, desired.peers, key_generated=True)
    assert text.splitlines()[:4] == [read.MARKER, read.KEY_GENERATED,
                                     "# netkit.egress: internet_route families=ipv4 table=51820 fwmark=51820 "
                                     "priority=5000 fail_open=0", "[Interface]"]
    assert "Table = off" in text and "PostUp = wg set %i private-key /etc/wireguard/wg0.key" in text
    assert "PostUp = ip -4 route replace unreachable 0.0.0.0/0 metric 4294967295 table 51820" in text
    assert "PostUp = ip -4 route replace 0.0.0.0/0 dev %i table 51820" in text
    assert "PostUp = sysctl -q -w net.ipv4.ip_forward=1" in text
    assert "PrivateKey" not in text
    persisted = read.parse_config(text)
    assert persisted.ours and persisted.key_generated and persisted.forwarding
    assert persisted.peers == {KEY_A: desired.peers[0]}
    assert persisted.addresses == ("10.100.0.11/24",) and persisted.internet == desired.internet
    assert not read.parse_config("[Interface]\nAddress = 10.0.0.1/24\n").ours


def test_wg_set_applies_only_the_difference_and_keeps_foreign_peers():
    foreign = model.Peer(KEY_B, ("10.9.0.0/24",))
    live = read.Live(exists=True, kind="tun", up=True, public_key=OWN, listen_port=51820,
                     peers={KEY_A: model.Peer(KEY_A, ("10.100.0.1/32",), "192.0.2.1:51820"), KEY_B: foreign})
    desired = desired_with([{"public_key": KEY_A, "endpoint": "192.0.2.1:51820",
                             "allowed_ips": ["10.100.0.1/32", "192.168.50.0/24"]}])
    persisted = read.Persisted(ours=True, peers={KEY_A: live.peers[KEY_A]})
    args, undo, _summary = render.wg_set_args(desired, live, persisted, set_key=False)
    assert args == ["peer", KEY_A, "endpoint", "192.0.2.1:51820", "persistent-keepalive", "off",
                    "allowed-ips", "10.100.0.1/32,192.168.50.0/24"]
    assert undo == ["peer", KEY_A, "endpoint", "192.0.2.1:51820", "persistent-keepalive", "off",
                    "allowed-ips", "10.100.0.1/32"]
    # Our peer no longer wanted: removed; the foreign one is not named at all.
    args, undo, _summary = render.wg_set_args(desired_with([]), live, persisted, set_key=False)
    assert args == ["peer", KEY_A, "remove"] and KEY_B not in args
    # Nothing to do.
    live.peers[KEY_A] = desired.peers[0]
    assert render.wg_set_args(desired, live, persisted, set_key=False)[0] == []


def test_host_name_endpoints_compare_with_what_the_last_run_set():
    wanted = model.Peer(KEY_A, (), "vpn.example.com:51820")
    resolved = model.Peer(KEY_A, (), "198.51.100.7:51820")
    assert render.peer_matches(wanted, resolved, persisted=wanted)
    assert not render.peer_matches(wanted, resolved, persisted=None)


def test_address_lines_remove_only_addresses_we_added():
    desired = desired_with([], addresses=["10.100.0.12/24"])
    lines, undo = render.address_lines(desired, ("10.100.0.11/24", "10.7.7.7/32"), ("10.100.0.11/24",), "wg0")
    assert lines == ["address del 10.100.0.11/24 dev wg0", "address add 10.100.0.12/24 dev wg0"]
    assert undo == ["address add 10.100.0.11/24 dev wg0", "address del 10.100.0.12/24 dev wg0"]


def test_internet_lines_fail_closed_and_open():
    internet = model.InternetRoute(("ipv4",), 51820, 51820, 5000, fail_open=False)
    assert render.internet_lines(internet, "wg0", "ipv4") == [
        "route replace 0.0.0.0/0 dev wg0 table 51820",
        "route replace unreachable 0.0.0.0/0 metric 4294967295 table 51820",
        "rule add table main suppress_prefixlength 0 priority 4999",
        "rule add not fwmark 51820 table 51820 priority 5000"]
    fail_open = dataclasses.replace(internet, fail_open=True)
    assert not any("unreachable" in line for line in render.internet_lines(fail_open, "wg0", "ipv4"))


INTERNET = model.InternetRoute(("ipv4",), 51820, 51820, 5000, fail_open=False)
OUR_RULES = [{"priority": 4999, "src": "all", "table": "main", "suppress_prefixlen": 0},
             {"priority": 5000, "not": None, "src": "all", "fwmark": "0xca6c", "table": "51820"}]
OUR_ROUTES = {51820: [{"dst": "default", "dev": "wg0", "scope": "link", "flags": []},
                      {"type": "unreachable", "dst": "default", "metric": 4294967295, "flags": []}]}


@pytest.mark.parametrize("wanted, previous, rules, routes, expected", [
    # First run: everything is added.
    (INTERNET, None, [], {}, ["route replace 0.0.0.0/0 dev wg0 table 51820",
                              "route replace unreachable 0.0.0.0/0 metric 4294967295 table 51820",
                              "rule add table main suppress_prefixlength 0 priority 4999",
                              "rule add not fwmark 51820 table 51820 priority 5000"]),
    # Converged: nothing.
    (INTERNET, INTERNET, OUR_RULES, OUR_ROUTES, []),
    # The interface was recreated: only its default route is missing.
    (INTERNET, INTERNET, OUR_RULES, {51820: OUR_ROUTES[51820][1:]}, ["route replace 0.0.0.0/0 dev wg0 table 51820"]),
    # Fail-open: the unreachable default goes.
    (dataclasses.replace(INTERNET, fail_open=True), INTERNET, OUR_RULES, OUR_ROUTES,
     ["route del unreachable 0.0.0.0/0 metric 4294967295 table 51820"]),
    # Off: only what exists is removed.
    (None, INTERNET, OUR_RULES[1:], OUR_ROUTES, ["rule del priority 5000", "route flush table 51820"]),
    (None, INTERNET, [], {51820: []}, []),
    # Another table: the old one is removed, the new one added.
    (dataclasses.replace(INTERNET, table=100), INTERNET, OUR_RULES, {**OUR_ROUTES, 100: []},
     ["rule del priority 5000", "rule del priority 4999", "route flush table 51820",
      "route replace 0.0.0.0/0 dev wg0 table 100", "route replace unreachable 0.0.0.0/0 metric 4294967295 table 100",
      "rule add table main suppress_prefixlength 0 priority 4999", "rule add not fwmark 51820 table 100 priority 5000"]),
    # A foreign rule at our priority with another mark is not ours: ours is added beside it.
    (INTERNET, None, [dict(OUR_RULES[1], fwmark="0x1")], {}, None),
    # The other family is not touched.
    (INTERNET, INTERNET, [], {}, "ipv6"),
])
def test_internet_changes(wanted, previous, rules, routes, expected):
    if expected == "ipv6":
        assert render.internet_changes(wanted, previous, rules, routes, "wg0", "ipv6") == ([], [])
        return
    lines, undo = render.internet_changes(wanted, previous, rules, routes, "wg0", "ipv4")
    if expected is None:
        assert "rule add not fwmark 51820 table 51820 priority 5000" in lines
        return
    assert lines == expected
    assert bool(undo) == bool(lines)
