"""Pure nftables side of nat_policy: rendering and reading our table back.

The fixtures (tests/unit/fixtures/nat_policy/) belong together: ``policies.json`` is the module input,
``<role>_table.nft`` its render (golden), and ``<role>_table.json`` the ``nft -j list table inet
netkit_egress_nat`` output (nftables 1.0.6) after loading that render (note nft's canonical forms: merged
elements, ``& 0xff01ffff``, ``srcnat - 10`` as prio 90).
"""

import json
import os
import re

import pytest

from ansible_collections.netkit.egress.plugins.module_utils._nat_policy import model
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy import nftables as nft

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "nat_policy")


def fixture_text(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def fixture(name):
    return json.loads(fixture_text(name))


SOURCE_TABLE_JSON = fixture("source_table.json")["nftables"]
GATEWAY_TABLE_JSON = fixture("gateway_table.json")["nftables"]
NUMBERING = model.Numbering()
POLICIES = model.desired_policies("overridden", model.validate_config_entries(
    fixture("policies.json")["config"], "overridden"), [])
SLOTS = fixture("policies.json")["source_slots"]


@pytest.mark.parametrize("role, slots", [("source", SLOTS), ("gateway", {})])
def test_render_matches_the_golden_script(role, slots):
    assert nft.render_script(role, POLICIES, slots, NUMBERING) == fixture_text(f"{role}_table.nft")


def test_render_source_uses_index_set_names_and_owned_mark_bits():
    script = nft.render_script("source", POLICIES, SLOTS, NUMBERING)
    assert script.startswith("table inet netkit_egress_nat {}\ndelete table inet netkit_egress_nat\n")
    assert "set p1_src { type ipv4_addr; flags interval; auto-merge; elements = { 10.10.1.5, 10.10.2.0/23 }; }" \
        in script
    assert "ct mark set ct mark & 0xf000ffff | 0x00010000 comment \"policy web\"" in script
    assert "meta mark & 0x0fff0000 == 0x00020000 snat ip6 to ip6 saddr" in script
    assert "type nat hook postrouting priority srcnat - 10; policy accept;" in script
    # Nothing of ours ends a packet's way through the hooks: jumps only into our own chains, which return.
    for word in (" accept comment", " drop", " reject", "return", "goto"):
        assert word not in script
    assert re.findall(r"jump (\w+)", script) == ["e0", "e1", "select"]


def test_render_gateway_snat_and_optional_interface():
    script = nft.render_script("gateway", POLICIES, {}, NUMBERING)
    assert "ip saddr @p1_src ip daddr @p1_dst ip daddr != @p1_exc snat ip to 192.168.1.100" in script
    assert "ip6 saddr @p0_src ip6 daddr @p0_dst snat ip6 to 2001:db8:1::100" in script
    assert "prerouting" not in script
    with_interface = [model.Policy(**dict(POLICIES[0].to_dict(), sources=POLICIES[0].sources,
                                          destinations=POLICIES[0].destinations,
                                          excluded_destinations=(), interface="eth1"))]
    assert 'oifname "eth1" snat ip6 to' in nft.render_script("gateway", with_interface, {}, NUMBERING)


def test_render_nothing_removes_the_table():
    assert nft.render_script("source", [], {}, NUMBERING) == \
        "table inet netkit_egress_nat {}\ndelete table inet netkit_egress_nat\n"


@pytest.mark.parametrize("role, objects, slots", [("source", SOURCE_TABLE_JSON, SLOTS),
                                                  ("gateway", GATEWAY_TABLE_JSON, {})])
def test_parse_reads_back_what_was_rendered(role, objects, slots):
    held = nft.parse_table(objects, NUMBERING)
    assert held.exists and held.understood and held.role == role
    assert held.slots == slots
    expected = [nft.strip_interface(policy) for policy in POLICIES]
    assert held.policies == expected
    assert nft.table_matches(held, role, POLICIES, slots)


def test_changes_are_detected():
    held = nft.parse_table(SOURCE_TABLE_JSON, NUMBERING)
    changed = [POLICIES[0], model.Policy(**dict(POLICIES[1].to_dict(), sources=("10.10.1.5",),
                                                destinations=POLICIES[1].destinations,
                                                excluded_destinations=POLICIES[1].excluded_destinations))]
    assert not nft.table_matches(held, "source", changed, SLOTS)
    assert not nft.table_matches(held, "source", POLICIES[:1], {"2001:db8:1::100": 1})
    assert not nft.table_matches(held, "gateway", POLICIES, {})
    assert not nft.table_matches(held, "source", POLICIES, {"192.168.1.100": 1, "2001:db8:1::100": 0})
    assert not nft.table_matches(held, "source", [], {})
    assert nft.table_matches(nft.parse_table(None, NUMBERING), "source", [], {})


def test_a_foreign_rule_in_our_table_is_drift():
    objects = SOURCE_TABLE_JSON + [{"rule": {"family": "inet", "table": "netkit_egress_nat",
                                             "chain": "prerouting", "handle": 99, "expr": [{"accept": None}]}}]
    held = nft.parse_table(objects, NUMBERING)
    assert not held.understood
    assert not nft.table_matches(held, "source", POLICIES, SLOTS)


@pytest.mark.parametrize("elements, expected", [
    (["10.0.0.1"], ("10.0.0.1",)),
    ([{"prefix": {"addr": "10.0.0.0", "len": 23}}], ("10.0.0.0/23",)),
    ([{"range": ["10.0.0.0", "10.0.2.255"]}], ("10.0.0.0/23", "10.0.2.0/24")),
    ([{"elem": {"val": "2001:db8::1", "comment": "x"}}], ("2001:db8::1",)),
])
def test_element_forms(elements, expected):
    assert nft.element_networks(elements) == expected


def test_elements_merge_like_the_set_and_read_ipv6_prefixes():
    elements = [{"prefix": {"addr": "10.0.1.0", "len": 24}}, {"prefix": {"addr": "10.0.0.0", "len": 24}},
                "10.0.2.0", {"prefix": {"addr": "2001:db8::", "len": 32}}]
    assert nft.element_networks(elements) == ("10.0.0.0/23", "10.0.2.0", "2001:db8::/32")


def test_elements_keep_families_apart_and_split_ranges():
    elements = ["::", "0.0.0.10", "0.0.0.11", {"range": ["10.0.0.0", "10.0.2.255"]}]
    assert nft.element_networks(elements) == ("0.0.0.10/31", "10.0.0.0/23", "10.0.2.0/24", "::")
    assert nft.element_networks([{"range": ["0.0.0.0", "255.255.255.255"]}]) == ("0.0.0.0/0",)
    assert nft.element_networks([]) == ()


@pytest.mark.parametrize("element", [
    {"prefix": {"addr": "10.0.0.1", "len": 24}},  # host bits: not something nft prints
    {"prefix": {"addr": "10.0.0.0", "len": 33}},
    {"prefix": {"addr": "10.0.0.0", "len": "24"}},
    {"prefix": {"addr": "010.0.0.0", "len": 24}},
    {"range": ["10.0.0.9", "10.0.0.1"]},
    {"range": ["10.0.0.1", "2001:db8::1"]},
    {"concat": ["10.0.0.1", 80]},
])
def test_unexpected_elements_are_refused(element):
    # policy_from_rule turns this into "not understood": the table is rewritten, never misread.
    with pytest.raises(ValueError):
        nft.element_networks([element])


def test_source_marks_a_connection_once_so_the_first_policy_by_name_wins_as_on_the_gateway():
    script = nft.render_script("source", POLICIES, SLOTS, NUMBERING)
    marking = [line for line in script.splitlines() if "ct mark set" in line]
    assert [line.rsplit('"', 2)[1] for line in marking] == ["policy v6", "policy web"]
    assert all(line.strip().startswith("ct mark & 0x0fff0000 == 0x00000000 ") for line in marking)
    assert "ct state new ct direction original ct mark & 0x0fff0000 == 0x00000000 jump select" in script
    gateway = [line for line in nft.render_script("gateway", POLICIES, {}, NUMBERING).splitlines() if " snat " in line]
    assert [line.rsplit('"', 2)[1] for line in gateway] == ["policy v6", "policy web"]


def without_guard(objects):
    """The source table of the previous release: policy rules without the unmarked guard (last match won)."""
    stripped = json.loads(json.dumps(objects))
    for entry in stripped:
        rule = entry.get("rule")
        if rule and rule.get("comment", "").startswith("policy "):
            rule["expr"] = [e for e in rule["expr"] if (e.get("match") or {}).get("right") != 0]
    return stripped


def test_a_table_of_the_previous_release_is_rewritten():
    held = nft.parse_table(without_guard(SOURCE_TABLE_JSON), NUMBERING)
    assert not held.understood
    assert not nft.table_matches(held, "source", POLICIES, SLOTS)


def test_rules_in_another_order_are_drift():
    objects = json.loads(json.dumps(GATEWAY_TABLE_JSON))
    rules = [index for index, entry in enumerate(objects) if "rule" in entry]
    objects[rules[0]], objects[rules[1]] = objects[rules[1]], objects[rules[0]]
    held = nft.parse_table(objects, NUMBERING)
    assert held.understood
    assert not nft.table_matches(held, "gateway", POLICIES, {})
