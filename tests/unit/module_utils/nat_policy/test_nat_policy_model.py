"""Validation, canonical forms, states and slot allocation of nat_policy (pure)."""

import ipaddress
import random

import pytest

from ansible_collections.netkit.egress.plugins.module_utils import _net
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy import model
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError

WEB = {"name": "web", "egress_ip": "192.168.1.100", "sources": ["10.10.1.5", "10.10.1.4/31"],
       "destinations": ["203.0.113.0/25", "203.0.113.128/25"], "excluded_destinations": []}


def policies(config, state="overridden", before=()):
    return model.desired_policies(state, model.validate_config_entries(config, state), list(before))


def test_canonical_form_merges_and_reads_host_addresses_bare():
    (policy,) = policies([WEB])
    assert policy.sources == ("10.10.1.4/31",)
    assert policy.destinations == ("203.0.113.0/24",)
    assert policy.to_dict()["excluded_destinations"] == []
    assert model.canonical_cidrs([model.parse_cidr("10.0.0.7/32", "x")]) == ("10.0.0.7",)


@pytest.mark.parametrize("entry, message", [
    ({"name": "bad name"}, "config[0].name: 'bad name' must match"),
    ({"name": "x" * 64}, "config[0].name:"),
    (dict(WEB, sources=["10.10.1.5", "10.0.0.0/33"]),
     "config[0] (web).sources[1]: '10.0.0.0/33' is not a valid CIDR"),
    (dict(WEB, egress_ip="192.168.1.300"), "config[0] (web).egress_ip: '192.168.1.300' is not a valid IP"),
    (dict(WEB, egress_ip=None), "config[0] (web).egress_ip: is required"),
    (dict(WEB, destinations=[]), "config[0] (web).destinations: needs at least one CIDR"),
    (dict(WEB, sources="10.10.1.5"), "config[0] (web).sources: must be a list"),
    (dict(WEB, excluded_destinations=["2001:db8::/64"]),
     "excluded_destinations[0]: 2001:db8::/64 is IPv6 but egress_ip 192.168.1.100 is IPv4"),
    (dict(WEB, interface="eth0; rm"), "config[0] (web).interface: 'eth0; rm' must match"),
])
def test_invalid_entries_name_the_field(entry, message):
    with pytest.raises(InputError) as error:
        policies([entry])
    assert message in str(error.value)


def test_duplicate_names_are_refused():
    with pytest.raises(InputError, match=r"config\[1\].name: 'web' is also config\[0\]"):
        model.validate_config_entries([WEB, WEB], "merged")


def test_deleted_needs_only_names():
    before = policies([WEB, dict(WEB, name="api")])
    assert [p.name for p in policies([{"name": "web"}], "deleted", before)] == ["api"]
    assert policies([], "deleted", before) == []


def test_merged_grows_lists_and_keeps_others():
    before = policies([WEB, dict(WEB, name="api", egress_ip="192.168.1.101")])
    after = policies([{"name": "web", "sources": ["10.10.9.9"], "egress_ip": "192.168.1.102"}], "merged", before)
    web = [p for p in after if p.name == "web"][0]
    assert web.sources == ("10.10.1.4/31", "10.10.9.9")
    assert web.egress_ip == "192.168.1.102"
    assert [p.name for p in after] == ["api", "web"]


def test_replaced_and_overridden():
    before = policies([WEB, dict(WEB, name="api")])
    replaced = policies([dict(WEB, sources=["10.10.9.9"])], "replaced", before)
    assert [p.name for p in replaced] == ["api", "web"]
    assert replaced[1].sources == ("10.10.9.9",)
    with pytest.raises(InputError, match="egress_ip: is required"):
        policies([{"name": "web", "sources": ["10.10.9.9"]}], "replaced", before)
    assert [p.name for p in policies([WEB], "overridden", before)] == ["web"]


def test_slots_are_sticky_and_fill_gaps():
    held = {"192.168.1.100": 3}
    wanted = policies([WEB, dict(WEB, name="b", egress_ip="192.168.1.5"),
                       dict(WEB, name="c", egress_ip="192.168.1.200")])
    assert model.allocate_slots(wanted, held, 256) == {"192.168.1.100": 3, "192.168.1.5": 0, "192.168.1.200": 1}
    with pytest.raises(InputError, match="more marks than mark_mask allows"):
        model.allocate_slots(wanted, {}, 2)


def test_numbering():
    numbering = model.build_numbering({"mark_mask": "0x0000ff00", "mark_base": "0x100"})
    assert numbering.mark_step == 0x100
    assert numbering.mark(2) == 0x300
    assert numbering.slot_count == 255
    assert numbering.slot_of_mark(0x300) == 2
    assert numbering.slot_of_mark(0x10000) is None
    with pytest.raises(InputError, match="mark_base: 0x00010000 has bits outside mark_mask"):
        model.build_numbering({"mark_mask": 0xff00, "mark_base": 0x10000})
    with pytest.raises(InputError, match="mark_mask: 'zz' is not an integer"):
        model.build_numbering({"mark_mask": "zz"})
    with pytest.raises(InputError, match="route_table_base: 100 overlaps"):
        model.build_numbering({"route_table_base": 100})
    with pytest.raises(InputError, match="mark_mask: 0x00ff00ff must be one run of contiguous bits"):
        model.build_numbering({"mark_mask": "0x00ff00ff"})
    with pytest.raises(InputError, match="rule_priority_base: 30000 leaves no room for the 8193 rule priorities"):
        model.build_numbering({"rule_priority_base": 30000})
    assert model.build_numbering({"rule_priority_base": 30000, "mark_mask": "0x00ff0000"}).end_priority == 30512


def test_return_routes():
    routes = model.validate_return_routes([{"destination": "10.10.2.0/24", "via": "192.168.1.2"},
                                           {"destination": "10.10.1.7/24", "via": "192.168.1.1"}], "gateway")
    assert [route.destination for route in routes] == ["10.10.1.0/24", "10.10.2.0/24"]
    with pytest.raises(InputError, match=r"return_routes\[0\].via: 192.168.1.1 is not of the family"):
        model.validate_return_routes([{"destination": "2001:db8::/64", "via": "192.168.1.1"}], "gateway")
    with pytest.raises(InputError, match="only a gateway"):
        model.validate_return_routes([{"destination": "10.0.0.0/8", "via": "192.168.1.1"}], "source")
    assert model.validate_return_routes([], "source") == []


# ---- integer CIDRs: the same answers as ipaddress, which they replace for speed ----------------------
def _expected_network(text, strict):
    network = ipaddress.ip_network(text, strict=strict)
    return (_net.VERSION_FAMILY[network.version], int(network.network_address), network.prefixlen)


@pytest.mark.parametrize("text", [
    "10.1.2.3", "10.1.2.3/8", "10.0.0.0/08", "0.0.0.0/0", "255.255.255.255/32", "10.0.0.0/255.0.0.0",
    "10.0.0.0/0.255.255.255", "2001:DB8::1/64", "2001:db8::/32", "::/0", "::ffff:10.0.0.1", "fe80::1%eth0",
    "10.0.0.0/008",
    # refused by both
    "01.2.3.4", "10.0.0.256", "10.0.0.0/33", "10.0.0.0/", "10.0.0", "1.2.3.4 ", "١.٢.٣.٤", "10.0.0.0/-1",
    "10.0.0.0/+8", "2001:db8::/129", "", "x", "10.0.0.0/8/8",
])
def test_parse_network_agrees_with_ipaddress(text):
    for strict in (False, True):
        try:
            expected = _expected_network(text, strict)
        except ValueError:
            with pytest.raises(ValueError):
                _net.parse_cidr(text, "x", strict=strict)
        else:
            assert tuple(_net.parse_cidr(text, "x", strict=strict)) == expected


def test_parse_cidr_names_the_field_for_what_ipaddress_refuses():
    with pytest.raises(InputError, match=r"sources\[3\]: '01.2.3.4' is not a valid CIDR"):
        model.parse_cidr("01.2.3.4", "sources[3]")
    assert model.parse_cidr(" 10.1.2.3/24 ", "x").text == "10.1.2.0/24"
    assert model.bare_host(model.parse_cidr("2001:db8::1/128", "x").text) == "2001:db8::1"


def test_canonical_networks_agree_with_collapse_addresses_on_random_input():
    rng = random.Random(5)
    for version, bits in ((4, 32), (6, 128)):
        for _round in range(200):
            networks = []
            for _index in range(rng.randint(1, 40)):
                prefix = rng.randint(bits - 12, bits) if rng.random() < 0.9 else rng.randint(0, bits)
                # Crowd the addresses into a small space so that overlaps and neighbours are frequent.
                first = (rng.getrandbits(14) << (bits - 24)) if bits == 32 else (rng.getrandbits(14) << 4)
                kind = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
                networks.append(kind((first, prefix), strict=False))
            expected = tuple(str(net.network_address) if net.prefixlen == bits else str(net)
                             for net in ipaddress.collapse_addresses(networks))
            parsed = [model.parse_cidr(str(net), "x") for net in networks]
            assert model.canonical_cidrs(parsed) == expected


def test_numbering_slot_count_is_computed_once():
    numbering = model.Numbering()
    assert numbering.slot_count == 4095
    assert "slot_count" in vars(numbering)
    assert numbering == model.Numbering()
