"""Policy routing, return routes and sysctls of nat_policy (pure), plus the offline render."""

from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.netkit.egress.plugins.module_utils._nat_policy import model
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy import routing
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy import run as nat_policy

NUMBERING = model.Numbering()
SLOTS = {"192.168.1.100": 0, "2001:db8:1::100": 1}
HELD_RULES_4 = [{"priority": 0, "src": "all", "table": "local"},
                {"priority": 21000, "src": "all", "fwmark": "0x10000", "fwmask": "0xff0000", "table": "21000"},
                {"priority": 21005, "src": "all", "table": "main"},
                {"priority": 32766, "src": "all", "table": "main"}]
HELD_ROUTES_4 = [{"dst": "default", "gateway": "192.168.1.100", "dev": "eth0", "table": "21000", "flags": []},
                 {"dst": "10.10.1.0/24", "gateway": "192.168.1.2", "dev": "eth0", "flags": []},
                 {"dst": "default", "gateway": "192.168.1.9", "dev": "eth0", "table": "100", "flags": []}]


def test_owned_rules_and_routes():
    rules = routing.owned_rules(HELD_RULES_4, "ipv4", NUMBERING)
    assert rules == [routing.RuleSpec("ipv4", 21000, 0x10000, 0xff0000, 21000),
                     routing.RuleSpec("ipv4", 21005, None, None, -1)]
    source = routing.owned_routes(HELD_ROUTES_4, "ipv4", NUMBERING, include_main=False)
    assert [(route.table, route.destination) for route in source] == [("21000", "default")]
    gateway = routing.owned_routes(HELD_ROUTES_4, "ipv4", NUMBERING, include_main=True)
    assert [(route.table, route.destination) for route in gateway] == [("21000", "default"), ("main", "10.10.1.0/24")]
    assert routing.slot_interfaces(source, SLOTS) == {"192.168.1.100": "eth0"}


def test_changes_add_missing_and_remove_stray():
    held_rules = routing.owned_rules(HELD_RULES_4, "ipv4", NUMBERING)
    held_routes = routing.owned_routes(HELD_ROUTES_4, "ipv4", NUMBERING, include_main=False)
    wanted_rules = routing.desired_rules(SLOTS, NUMBERING)
    wanted_routes = routing.desired_slot_routes(SLOTS, {"192.168.1.100": "eth0", "2001:db8:1::100": "eth0"},
                                                NUMBERING)
    adds, removals = routing.routing_changes(held_rules, wanted_rules, held_routes, wanted_routes, 201)
    assert routing.command_lines(adds) == [
        "ip -4 rule add priority 21000 fwmark 0x0/0xfff0000 goto 29192",
        "ip -4 rule add priority 21014 fwmark 0x10000/0xfff0000 lookup 21000",
        "ip -4 rule add priority 29192 nop",
        "ip -6 route replace default via 2001:db8:1::100 dev eth0 table 21001 proto 201",
        "ip -6 rule add priority 21000 fwmark 0x0/0xfff0000 goto 29192",
        "ip -6 rule add priority 21016 fwmark 0x20000/0xfff0000 lookup 21001",
        "ip -6 rule add priority 29192 nop"]
    # The rule of the previous layout at 21000 is deleted by its words (not the new one at that priority).
    assert routing.command_lines(removals) == ["ip -4 rule del priority 21000 fwmark 0x10000/0xff0000 lookup 21000",
                                               "ip -4 rule del priority 21005"]


def test_held_rules_of_our_layout_read_back_equal():
    held = [{"priority": 21000, "src": "all", "fwmark": "0", "fwmask": "0xfff0000", "goto": 29192},
            {"priority": 21011, "src": "all", "fwmark": "0x20000", "fwmask": "0xffe0000", "goto": 21015},
            {"priority": 21014, "src": "all", "fwmark": "0x10000", "fwmask": "0xfff0000", "table": "21000"},
            {"priority": 21015, "src": "all", "nop": None},
            {"priority": 21017, "src": "all", "fwmark": "0x30000", "fwmask": "0xfff0000", "table": "21002"},
            {"priority": 29192, "src": "all", "nop": None}]
    wanted = routing.desired_rules({"192.168.1.100": 0, "192.168.1.101": 2}, NUMBERING)
    assert routing.owned_rules(held, "ipv4", NUMBERING) == wanted
    broken = [dict(held[1], unresolved=None), dict(held[3], table="5"), dict(held[4], src="10.0.0.1")]
    assert not set(routing.owned_rules(broken, "ipv4", NUMBERING)) & set(wanted)


def walk(mark, rules):
    """The kernel's walk: the first matching rule acts; a goto continues at exactly its target priority,
    which must exist (an unresolved goto is skipped). Returns (table looked up or None, rules passed)."""
    by_priority = {rule.priority: index for index, rule in enumerate(rules)}
    index, steps = 0, 0
    while index < len(rules):
        rule, steps = rules[index], steps + 1
        if rule.fwmark is None or mark & rule.fwmask == rule.fwmark:
            if rule.table is not None:
                return rule.table, steps
            if rule.goto is not None:
                index = by_priority[rule.goto]
                continue
        index += 1
    return None, steps


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, NUMBERING.slot_count - 1), min_size=1, max_size=300),
       st.integers(0, 0xFFFFFFFF))
def test_every_mark_finds_its_own_table_in_few_rules(used, foreign):
    slots = {f"10.{slot // 250}.{slot % 250}.1": slot for slot in used}
    rules = routing.desired_rules(slots, NUMBERING)
    assert len({rule.priority for rule in rules}) == len(rules)
    assert all(NUMBERING.rule_priority_base <= rule.priority <= NUMBERING.end_priority for rule in rules)
    for slot in used:
        table, steps = walk(NUMBERING.mark(slot), rules)
        assert table == NUMBERING.table(slot)
        assert steps <= 2 * NUMBERING.tree_depth + 2
    # Any other packet mark (other users' bits, none of ours, a mark of ours not used here): no table of ours.
    if foreign & NUMBERING.mark_mask not in {NUMBERING.mark(slot) for slot in used}:
        assert walk(foreign, rules)[0] is None
    assert walk(foreign & ~NUMBERING.mark_mask, rules) == (None, 2)  # unmarked: past all of ours at once


def test_a_mark_passes_a_few_dozen_rules_whatever_the_number_of_egress_ips():
    every = routing.desired_rules({f"10.{slot // 250}.{slot % 250}.1": slot
                                   for slot in range(NUMBERING.slot_count)}, NUMBERING)
    assert len(every) == 2 * NUMBERING.slot_count + 1  # a tree: leaves + tests, the gate and the end
    for slot in range(NUMBERING.slot_count):
        table, steps = walk(NUMBERING.mark(slot), every)
        assert table == NUMBERING.table(slot) and steps <= 2 + 12 + 1
    one = routing.desired_rules({"192.168.1.100": 0}, NUMBERING)
    assert [rule.words() for rule in one] == ["priority 21000 fwmark 0x0/0xfff0000 goto 29192",
                                              "priority 21014 fwmark 0x10000/0xfff0000 lookup 21000",
                                              "priority 29192 nop"]


def test_moved_route_is_replaced_not_deleted():
    held_routes = routing.owned_routes(HELD_ROUTES_4, "ipv4", NUMBERING, include_main=True)
    wanted = routing.desired_return_routes([model.ReturnRoute("10.10.1.0/24", "192.168.1.3")])
    adds, removals = routing.routing_changes([], [], held_routes, wanted, 201)
    assert routing.command_lines(adds) == ["ip -4 route replace 10.10.1.0/24 via 192.168.1.3 table main proto 201"]
    assert routing.command_lines(removals) == ["ip -4 route del default table 21000 proto 201"]


def test_sysctls_forwarding_per_family_and_loose_only_where_strict():
    v4 = model.Policy("a", "192.168.1.100", ("10.0.0.1",), ("0.0.0.0/0",), (), "eth0")
    v6 = model.Policy("b", "2001:db8::100", ("2001:db8:10::1",), ("::/0",), (), "eth0")
    values = {"net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.eth0.rp_filter": "1"}
    assert routing.desired_sysctls("source", [v4, v6], values.get) == {
        "net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1", "net.ipv4.conf.eth0.rp_filter": "2"}
    values = {"net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.eth0.rp_filter": "0"}
    assert routing.desired_sysctls("source", [v4], values.get) == {"net.ipv4.ip_forward": "1"}
    values = {"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.conf.eth0.rp_filter": "0"}
    assert routing.desired_sysctls("source", [v4], values.get)["net.ipv4.conf.eth0.rp_filter"] == "2"
    assert routing.desired_sysctls("gateway", [v4], values.get) == {"net.ipv4.ip_forward": "1"}
    assert routing.desired_sysctls("gateway", [], values.get) == {}


def test_rendered_needs_no_host():
    params = {"config": [{"name": "web", "egress_ip": "192.168.1.100", "sources": ["10.10.1.5"],
                          "destinations": ["203.0.113.0/24"], "excluded_destinations": None, "interface": None}],
              "state": "rendered", "role": "source", "return_routes": None}
    numbering, cleaned, return_routes = nat_policy.validated_input(params)
    lines = nat_policy.rendered_commands("source", cleaned, return_routes, numbering)
    assert lines[0] == "nft -f - <<'EOF'"
    assert lines[-4:] == ["ip -4 route replace default via 192.168.1.100 table 21000 proto 201",
                          "ip -4 rule add priority 21000 fwmark 0x0/0xfff0000 goto 29192",
                          "ip -4 rule add priority 21014 fwmark 0x10000/0xfff0000 lookup 21000",
                          "ip -4 rule add priority 29192 nop"]
