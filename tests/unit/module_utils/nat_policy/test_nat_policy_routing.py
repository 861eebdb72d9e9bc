"""Policy routing, return routes and sysctls of nat_policy (pure), plus the offline render."""

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
                     routing.RuleSpec("ipv4", 21005, 0, 0xffffffff, -1)]
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
        "ip -6 route replace default via 2001:db8:1::100 dev eth0 table 21001 proto 201",
        "ip -6 rule add priority 21001 fwmark 0x20000/0xff0000 lookup 21001"]
    assert routing.command_lines(removals) == ["ip -4 rule del priority 21005"]


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
    assert lines[-2:] == ["ip -4 route replace default via 192.168.1.100 table 21000 proto 201",
                          "ip -4 rule add priority 21000 fwmark 0x10000/0xff0000 lookup 21000"]
