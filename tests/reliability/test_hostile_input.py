# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 4, item 5: hostile input. Hypothesis generates at least 200 bad inputs per module and per
filter (invalid CIDRs and addresses, mixed families, huge lists, names with quotes, newlines,
semicolons, braces, unicode, gatewayRef errors, floating IPs that are node addresses). Every one is
refused with an error that names the field; the module ran no command that changes the host and wrote
nothing (recorded per case by the module worker), and the host snapshot is unchanged (every 50 cases
and at the end). Valid random input never injects: rendered nft scripts parse back with ``nft -c``
and every quoted string and identifier in them matches our patterns.
"""

import ipaddress
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harness
from scenarios import FLOATING_ARGS, NAT_GATEWAY_ARGS, NAT_SOURCE_ARGS, ROUTES_ARGS, egress_gateway_args

from ansible.errors import AnsibleError
from ansible_collections.netkit.egress.plugins.filter.egress_client_routes import FilterModule as EgressClientFilters
from ansible_collections.netkit.egress.plugins.filter.egress_nat import FilterModule
from ansible_collections.netkit.egress.plugins.module_utils._nat_policy import nftables as nat_nft

EXAMPLES = 210
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
NASTY = ['eth0"', "eth0\n", "eth0;", "a b", "{eth0}", "eth0}", "é0", "eth0\x00", "$(reboot)", "`id`", "'",
         '"; flush ruleset; "', "eth0\nflush ruleset", "a" * 16, "", ".", "..", "eth0 ", "\u202eeth0",
         "eth0\r", "*nat", "-A FORWARD -j DROP", "COMMIT\n*filter", "\\", "eth0#x", "x" * 300]
NASTY_CIDRS = ["10.0.0.0/33", "300.1.1.1/24", "10.0.0.0/8; drop", "10.0.0.0/8 }", '10.0.0.0/8"', "{10.0.0.0/8}",
               "fe80::/129", "abc", "1.2.3.4/-1", "١٠.0.0.0/8", "10.0.0.0/8\nflush ruleset", "::/0/0", "10.0.0.0/ 8",
               "2001:db8::g/64", "10.0.0.0/8,10.0.0.0/8", "0x0a000000/8", "10/8"]
INTERFACE = re.compile(r"[A-Za-z0-9_.@-]{1,15}")
NAME = re.compile(r"[A-Za-z0-9_.-]{1,63}")
TEXT = st.text(max_size=24)


def _parses(text, parse):
    for candidate in (text, text.strip()):
        try:
            parse(candidate)
            return True
        except ValueError:
            pass
    return False


def bad_name(pattern):
    return (st.sampled_from(NASTY) | TEXT).filter(lambda text: not pattern.fullmatch(text.strip()))


def bad_interface():
    # "." and ".." fit the pattern but the kernel refuses them as interface names.
    return (st.sampled_from(NASTY) | TEXT).filter(
        lambda text: text != "" and (not INTERFACE.fullmatch(text.strip()) or text.strip() in (".", "..")))


BAD_CIDR = (st.sampled_from(NASTY_CIDRS + NASTY) | TEXT).filter(
    lambda text: text.strip() != "" and not _parses(text, lambda value: ipaddress.ip_network(value, strict=False)))
BAD_ADDRESS = (st.sampled_from(NASTY_CIDRS + NASTY + ["192.168.1.100/24"]) | TEXT).filter(
    lambda text: text.strip() != "" and not _parses(text, ipaddress.ip_address))


def put(value, index, item):
    """A copy of list ``value`` with ``item`` at ``index`` (appended when index is past the end)."""
    copy = list(value)
    copy.insert(min(index, len(copy)), item)
    return copy, min(index, len(copy) - 1)


# ---- module cases: (args, substrings the error must contain) --------------------------------
@st.composite
def egress_gateway_case(draw):
    args = egress_gateway_args()
    networks = [dict(network) for network in args["networks"]]
    kind = draw(st.sampled_from(["network_interface", "interface", "ranges", "huge ranges", "network name",
                                 "network cidr", "network range", "mixed family", "duplicate name",
                                 "network address"]))
    if kind in ("network_interface", "interface"):
        args[kind] = draw(bad_interface())
        return args, [kind]
    if kind == "ranges":
        ranges, index = put(["192.168.50.0/24", "2001:db8:50::/64"], draw(st.integers(0, 3)), draw(BAD_CIDR))
        return dict(args, ranges=ranges), [f"ranges[{index}]"]
    if kind == "huge ranges":
        count = draw(st.integers(1000, 5000))
        ranges = [str(ipaddress.ip_network((0xC6120000 + (i << 2), 30))) for i in range(count)]
        return dict(args, ranges=ranges + [draw(BAD_CIDR)]), [f"ranges[{count}]"]
    index = draw(st.integers(0, 1))
    if kind == "network name":
        networks[index]["name"] = draw(bad_name(NAME))
        return dict(args, networks=networks), [f"networks[{index}].name"]
    if kind == "duplicate name":
        networks[1]["name"] = networks[0]["name"]
        networks[0]["ranges"] = networks[0]["ranges"] + [f"192.168.50.{draw(st.integers(0, 120))}/32"]
        return dict(args, networks=networks), ["networks[1].name"]
    if kind == "network address":
        # Not an address, outside the network's cidr, or a second address of one family.
        address = draw(BAD_ADDRESS | st.sampled_from(["10.100.1.1", "192.168.50.1", "fd00:101::1", "2001:db8:50::1"]))
        if draw(st.booleans()):
            networks[index]["address"] = address
            return dict(args, networks=networks), [f"networks[{index}].address"]
        networks[index]["address"] = [networks[index]["cidr"][0].replace("0/25", "1/25").split("/")[0], address]
        return dict(args, networks=networks), [f"networks[{index}].address[1]"]
    if kind == "network cidr":
        cidrs, position = put(networks[index]["cidr"], draw(st.integers(0, 2)), draw(BAD_CIDR))
        networks[index]["cidr"] = cidrs
        return dict(args, networks=networks), [f"networks[{index}].cidr"]
    if kind == "network range":
        ranges, position = put(networks[index]["ranges"], draw(st.integers(0, 2)), draw(BAD_CIDR))
        networks[index]["ranges"] = ranges
        return dict(args, networks=networks), [f"networks[{index}].ranges[{position}]"]
    # An IPv6 range for a network that has only IPv4 cidrs.
    networks[index]["cidr"] = [networks[index]["cidr"][0]]
    networks[index]["ranges"] = networks[index]["ranges"] + [f"2001:db8:{draw(st.integers(100, 999))}::/64"]
    # The first range of the other family (index 1) is the one refused.
    return dict(args, networks=networks), [f"networks[{index}].ranges[1]"]


@st.composite
def egress_routes_case(draw):
    routes = [dict(route) for route in ROUTES_ARGS["routes"]]
    index = draw(st.integers(0, len(routes) - 1))
    kind = draw(st.sampled_from(["destination", "via", "dev", "metric", "family", "duplicate", "table",
                                 "protocol", "unknown key", "not a dict", "huge"]))
    where = f"routes[{index}]"
    if kind == "destination":
        routes[index]["destination"] = draw(BAD_CIDR)
        return dict(ROUTES_ARGS, routes=routes), [f"{where}.destination"]
    if kind == "via":
        routes[index]["via"] = draw(BAD_ADDRESS)
        return dict(ROUTES_ARGS, routes=routes), [f"{where}.via"]
    if kind == "dev":
        routes[index]["dev"] = draw(bad_interface())
        return dict(ROUTES_ARGS, routes=routes), [f"{where}.dev"]
    if kind == "metric":
        routes[index]["metric"] = draw(st.integers(max_value=-1) | st.integers(min_value=2 ** 32))
        return dict(ROUTES_ARGS, routes=routes), [f"{where}.metric"]
    if kind == "family":
        routes[index]["via"] = "fd00:100::2" if ":" not in routes[index]["destination"] else "10.100.0.2"
        return dict(ROUTES_ARGS, routes=routes), [f"{where}.via"]
    if kind == "duplicate":
        routes.append(dict(routes[index], via="10.100.0.3" if ":" not in routes[index]["destination"]
                           else "fd00:100::3"))
        return dict(ROUTES_ARGS, routes=routes), [f"routes[{len(routes) - 1}]"]
    if kind == "table":
        tables = st.sampled_from(["255", "0", "-1", "4294967296", "main;", "local"]) | bad_interface()
        return dict(ROUTES_ARGS, table=draw(tables)), ["table"]
    if kind == "protocol":
        return dict(ROUTES_ARGS, protocol=draw(st.integers(0, 4) | st.integers(min_value=256))), ["protocol"]
    if kind == "unknown key":
        routes[index]["gateway"] = "10.100.0.2"
        return dict(ROUTES_ARGS, routes=routes), [where]
    if kind == "not a dict":
        routes[index] = draw(st.sampled_from(["198.51.100.0/24 via 10.100.0.2", "", "x;y"]) | st.integers())
        return dict(ROUTES_ARGS, routes=routes), [where]
    count = draw(st.integers(1000, 4000))
    huge = [{"destination": str(ipaddress.ip_network((0xC6120000 + (i << 2), 30))), "via": "10.100.0.2"}
            for i in range(count)]
    return dict(ROUTES_ARGS, routes=huge + [{"destination": draw(BAD_CIDR), "via": "10.100.0.2"}]), \
        [f"routes[{count}].destination"]


@st.composite
def floating_ip_case(draw):
    addresses = list(FLOATING_ARGS["addresses"])
    kind = draw(st.sampled_from(["address", "node address", "duplicate", "outside", "interface", "prefix_length"]))
    if kind == "address":
        addresses, index = put(addresses, draw(st.integers(0, 3)), draw(BAD_ADDRESS))
        return dict(FLOATING_ARGS, addresses=addresses), [f"addresses[{index}]"]
    if kind == "node address":
        node = draw(st.sampled_from(["192.168.1.11", "2001:db8:1::11", "192.168.50.1", "10.100.0.1"]))
        addresses, index = put(addresses, draw(st.integers(0, 3)), node)
        return dict(FLOATING_ARGS, addresses=addresses), [f"addresses[{index}]", "not added by floating_ip"]
    if kind == "duplicate":
        index = draw(st.integers(0, 2))
        return dict(FLOATING_ARGS, addresses=addresses + [addresses[index].upper()]), [f"addresses[{len(addresses)}]"]
    if kind == "outside":
        outside = draw(st.sampled_from(["203.0.113.7", "198.51.100.1", "2001:db8:77::1", "8.8.8.8"]))
        return dict(FLOATING_ARGS, addresses=addresses + [outside]), [f"addresses[{len(addresses)}]"]
    if kind == "interface":
        return dict(FLOATING_ARGS, interface=draw(bad_interface())), ["interface"]
    return dict(FLOATING_ARGS, prefix_length=draw(st.integers(max_value=-1) | st.integers(33, 10 ** 6))), \
        ["prefix_length"]


@st.composite
def nat_policy_case(draw):
    base = draw(st.sampled_from([NAT_GATEWAY_ARGS, NAT_SOURCE_ARGS]))
    config = [dict(policy) for policy in base["config"]]
    index = draw(st.integers(0, len(config) - 1))
    where = f"config[{index}]"
    kind = draw(st.sampled_from(["name", "egress_ip", "sources", "destinations", "excluded", "interface",
                                 "mixed family", "duplicate name", "return route", "mark_mask", "table base",
                                 "huge"]))
    if kind == "name":
        config[index]["name"] = draw(bad_name(NAME))
        return dict(base, config=config), [f"{where}.name"]
    if kind == "egress_ip":
        config[index]["egress_ip"] = draw(BAD_ADDRESS)
        return dict(base, config=config), [where, ".egress_ip"]
    if kind in ("sources", "destinations", "excluded"):
        field = {"excluded": "excluded_destinations"}.get(kind, kind)
        values, position = put(config[index].get(field) or [], draw(st.integers(0, 2)), draw(BAD_CIDR))
        config[index][field] = values
        return dict(base, config=config), [where, f".{field}[{position}]"]
    if kind == "interface":
        config[index]["interface"] = draw(bad_interface())
        return dict(base, config=config), [where, ".interface"]
    if kind == "mixed family":
        other = "2001:db8:10::/64" if ":" not in config[index]["egress_ip"] else "10.10.1.0/24"
        config[index]["sources"] = config[index]["sources"] + [other]
        return dict(base, config=config), [where, f".sources[{len(config[index]['sources']) - 1}]"]
    if kind == "duplicate name":
        config.append(dict(config[index]))
        return dict(base, config=config), [f"config[{len(config) - 1}]"]
    if kind == "return route":
        routes = [dict(route) for route in NAT_GATEWAY_ARGS["return_routes"]]
        position = draw(st.integers(0, 1))
        field = draw(st.sampled_from(["destination", "via"]))
        routes[position][field] = draw(BAD_CIDR if field == "destination" else BAD_ADDRESS)
        return dict(NAT_GATEWAY_ARGS, return_routes=routes), [f"return_routes[{position}].{field}"]
    if kind == "mark_mask":
        return dict(base, mark_mask=draw(st.sampled_from(["0xff;", "0x0", "-1", "0x1ffffffff", "ff ff", "{}"]))), \
            ["mark_mask"]
    if kind == "table base":
        return dict(base, route_table_base=draw(st.sampled_from([253, 254, 255, 0, -5, 2 ** 32]))), \
            ["route_table_base"]
    count = draw(st.integers(1000, 4000))
    huge = [str(ipaddress.ip_network((0x0A0A0000 + (i << 2), 30))) for i in range(count)]
    config[0]["sources"] = huge + [draw(BAD_CIDR)]
    return dict(base, config=config), ["config[0]", f".sources[{count}]"]


MODULE_CASES = {
    "egress_gateway": ("gw", egress_gateway_case()),
    "egress_routes": ("gw", egress_routes_case()),
    "floating_ip": ("gw", floating_ip_case()),
    "nat_policy": (None, nat_policy_case()),
}


def read_only_violations(commands, writes):
    return [" ".join(argv) for argv in commands if not harness.is_read_only(argv)] + \
        [" ".join(write) for write in writes]


@pytest.mark.parametrize("module", sorted(MODULE_CASES))
def test_module_refuses_hostile_input(topo, workers, module):
    lab = topo
    fixed_host, strategy = MODULE_CASES[module]
    hosts = [fixed_host] if fixed_host else ["gw", "nb"]
    before = {host: harness.snapshot(lab, host) for host in hosts}
    stats = {"tried": 0, "passed": 0}
    failures = []

    @SETTINGS
    @given(strategy)
    def one(case):
        args, fields = case
        host = fixed_host or ("gw" if args.get("role") == "gateway" else "nb")
        result, commands, writes = workers(host).call(module, args)
        stats["tried"] += 1
        message = (result or {}).get("msg", "")
        violations = read_only_violations(commands, writes)
        ok = bool(result and result.get("failed")) and not result.get("crashed") and \
            all(field in message for field in fields) and not violations
        if ok:
            stats["passed"] += 1
        else:
            failures.append(f"{fields} {str(args)[:300]!r}: {str(result)[:400]} {violations}")
        if stats["tried"] % 50 == 0:
            assert harness.snapshot(lab, host) == before[host]

    one()
    after = {host: harness.snapshot(lab, host) for host in hosts}
    changes = sum(after[host] != before[host] for host in hosts)
    harness.record("5 hostile input refused (module)", module, stats["tried"], stats["passed"], changes)
    assert stats["tried"] >= 200
    assert not failures, "\n".join(failures[:10])
    assert not changes


# ---- filters --------------------------------------------------------------------------------
FILTERS = FilterModule().filters()
NODES = {"worker1": ["192.168.1.1/24"], "worker2": ["192.168.1.2/24"]}
SOURCE = {"namespace_selector": {"match_labels": {"user": "alice"}}, "pod_selector": {"match_labels": {"role": "f"}}}


def group(name="default", ips=("192.168.1.100",)):
    return {"name": name, "namespace": "kube-system", "floating_ips": list(ips)}


def policy(name="p1", ref="default", destinations=("8.8.8.0/24",)):
    return {"name": name, "sources": [SOURCE], "action": "SNAT",
            "destinations": [{"cidr": cidr} for cidr in destinations],
            "gateway_ref": {"name": ref, "namespace": "kube-system"}}


@st.composite
def inventory_case(draw):
    kind = draw(st.sampled_from(["group name", "floating ip", "node address", "outside", "policy name",
                                 "destination", "gateway ref", "ref name", "claimed twice", "action"]))
    groups, policies = [group()], [policy()]
    if kind == "group name":
        groups[0]["name"] = draw(bad_name(NAME))
        return (groups, policies, NODES), ["network_gateway_groups[0]", "name"]
    if kind == "floating ip":
        ips, index = put(groups[0]["floating_ips"], draw(st.integers(0, 2)), draw(BAD_ADDRESS))
        groups[0]["floating_ips"] = ips
        return (groups, policies, NODES), ["network_gateway_groups[0]", f"floating_ips[{index}]"]
    if kind == "node address":
        groups[0]["floating_ips"] = ["192.168.1.100", draw(st.sampled_from(["192.168.1.1", "192.168.1.2"]))]
        return (groups, policies, NODES), ["floating_ips[1]", "own address"]
    if kind == "outside":
        groups[0]["floating_ips"] = [draw(st.sampled_from(["10.0.0.1", "192.168.2.1", "192.168.1.255",
                                                           "192.168.1.0", "2001:db8::1"]))]
        return (groups, policies, NODES), ["floating_ips[0]"]
    if kind == "policy name":
        policies[0]["name"] = draw(bad_name(NAME))
        return (groups, policies, NODES), ["egress_nat_policies[0]", "name"]
    if kind == "destination":
        policies[0]["destinations"] = [{"cidr": draw(BAD_CIDR)}]
        return (groups, policies, NODES), ["egress_nat_policies[0]", "destinations[0].cidr"]
    if kind == "gateway ref":
        policies[0]["gateway_ref"] = {"name": draw(st.sampled_from(["nope", "default2", "x"])),
                                      "namespace": "kube-system"}
        return (groups, policies, NODES), ["egress_nat_policies[0]", "gateway_ref"]
    if kind == "ref name":
        policies[0]["gateway_ref"] = {"name": draw(bad_name(NAME)), "namespace": "kube-system"}
        return (groups, policies, NODES), ["egress_nat_policies[0]", "gateway_ref"]
    if kind == "claimed twice":
        # kube-system/default may list every floating IP (the guide's pattern); two other groups may not.
        address = draw(st.sampled_from(["192.168.1.100", "192.168.1.101", "192.168.1.102"]))
        groups = [group("first", [address]), group("second", ["192.168.1.120", address])]
        return (groups, [policy(ref="first")], NODES), ["network_gateway_groups[1]", "floating_ips[1]", address]
    policies[0]["action"] = draw(st.sampled_from(["DNAT", "snat;", "", "MASQUERADE", "SNAT\n"]))
    return (groups, policies, NODES), ["egress_nat_policies[0]", "action"]


@st.composite
def first_floating_ip_case(draw):
    kind = draw(st.sampled_from(["unknown", "bad name", "bad namespace", "missing", "not a mapping"]))
    if kind == "unknown":
        return ([group()], {"name": draw(st.sampled_from(["nope", "default1", "d"])), "namespace": "kube-system"}), \
            ["gatewayRef"]
    if kind == "bad name":
        return ([group()], {"name": draw(bad_name(NAME)), "namespace": "kube-system"}), ["gatewayRef"]
    if kind == "bad namespace":
        return ([group()], {"name": "default", "namespace": draw(bad_name(NAME))}), ["gatewayRef"]
    if kind == "missing":
        return ([group()], None), ["gatewayRef"]
    return ([group()], draw(st.sampled_from(["default", ["default"], 5]))), ["gatewayRef"]


@st.composite
def select_workloads_case(draw):
    kind = draw(st.sampled_from(["workload address", "namespace name", "policy name", "destination"]))
    namespaces = [{"name": "alice-ns", "labels": {"user": "alice"}}]
    workloads = [{"name": "w1", "namespace": "alice-ns", "address": "10.10.1.10", "labels": {"role": "f"}}]
    if kind == "workload address":
        workloads[0]["address"] = draw(BAD_ADDRESS)
        return (policy(), namespaces, workloads), ["workloads[0]", "address"]
    if kind == "namespace name":
        namespaces[0]["name"] = draw(bad_name(NAME))
        return (policy(), namespaces, workloads), ["namespaces[0].name"]
    if kind == "policy name":
        return (dict(policy(), name=draw(bad_name(NAME))), namespaces, workloads), ["policy", "name"]
    return (policy(destinations=[draw(BAD_CIDR)]), namespaces, workloads), ["policy", "destinations[0].cidr"]


@st.composite
def allocate_case(draw):
    kind = draw(st.sampled_from(["address", "nodes type", "huge"]))
    if kind == "address":
        ips, index = put(["192.168.1.100", "192.168.1.101"], draw(st.integers(0, 2)), draw(BAD_ADDRESS))
        return (ips, ["gw1", "gw2"]), [f"floating_ips[{index}]"]
    if kind == "nodes type":
        return (["192.168.1.100"], draw(st.sampled_from(["gw1", 7, {"gw1": 1}]))), ["gateway_nodes"]
    count = draw(st.integers(1000, 5000))
    ips = [str(ipaddress.ip_address(0xC6120000 + i)) for i in range(count)]
    return (ips + [draw(BAD_ADDRESS)], ["gw1", "gw2"]), [f"floating_ips[{count}]"]


@st.composite
def plan_case(draw):
    (groups, policies, _nodes), fields = draw(inventory_case())
    hostvars = {"gw1": {"ansible_facts": {"interfaces": ["eth0"]}, "egress_nat_node_addresses": ["192.168.1.11/24"]},
                "worker1": {"ansible_facts": {"interfaces": ["eth0"]}, "egress_nat_node_addresses": ["192.168.1.1/24"]},
                "worker2": {"ansible_facts": {"interfaces": ["eth0"]}, "egress_nat_node_addresses": ["192.168.1.2/24"]}}
    return (groups, policies, [], hostvars, ["gw1"], ["worker1", "worker2"]), fields


# ---- issue 11: routers, addresses in use and workload addresses, from facts -----------------------
def facts(address, networks=(), router="192.168.1.254", secondaries=()):
    """Facts of the network subset as a host in the nodes' subnet 192.168.1.0/24 reports them."""
    interfaces = {"eth0": {"ipv4": {"address": address, "prefix": "24"},
                           "ipv4_secondaries": [{"address": extra, "prefix": "24"} for extra in secondaries]}}
    for index, network in enumerate(networks):
        interfaces[f"cbr{index}"] = {"ipv4": {"address": network.split("/")[0], "prefix": network.split("/")[1]}}
    return dict(interfaces, interfaces=["lo"] + list(interfaces),
                all_ipv4_addresses=[address, *secondaries] + [network.split("/")[0] for network in networks],
                default_ipv4={"address": address, "prefix": "24", "gateway": router})


def cluster_hostvars(workloads1, workloads2, pod_cidrs=None, secondaries=()):
    return {"gw1": {"ansible_facts": facts("192.168.1.11")},
            "worker1": {"ansible_facts": facts("192.168.1.1", ["10.10.1.1/24"]), "egress_workloads": workloads1,
                        "egress_nat_pod_cidrs": pod_cidrs or []},
            "worker2": {"ansible_facts": facts("192.168.1.2", ["10.10.2.1/24"], secondaries=secondaries),
                        "egress_workloads": workloads2}}


def pod(name, address):
    return {"name": name, "namespace": "alice-ns", "labels": {"role": "f"}, "address": address}


@st.composite
def cluster_address_case(draw):
    kind = draw(st.sampled_from(["router", "in use", "duplicate", "node address", "router workload",
                                 "floating workload", "other node", "outside pod cidrs", "bad pod cidr"]))
    groups, policies = [group(ips=["192.168.1.100"])], [policy()]
    mine = [pod("w1", f"10.10.1.{draw(st.integers(2, 254))}")]
    theirs = [pod("w2", f"10.10.2.{draw(st.integers(2, 254))}")]
    if kind == "router":
        groups[0]["floating_ips"] = ["192.168.1.100", "192.168.1.254"]
        return cluster_hostvars(mine, theirs), groups, policies, [
            "network_gateway_groups[0] (default): floating_ips[1]: 192.168.1.254 is the default gateway"]
    if kind == "in use":
        extra = f"192.168.1.{draw(st.integers(50, 90))}"
        groups[0]["floating_ips"] = [extra]
        return cluster_hostvars(mine, theirs, secondaries=[extra]), groups, policies, [
            f"floating_ips[0]: {extra} is node worker2's own address"]
    if kind == "duplicate":
        return cluster_hostvars(mine, [pod("w2", mine[0]["address"])]), groups, policies, [
            "worker2: egress_workloads[0] (w2).address", "also the address of worker1: egress_workloads[0] (w1)"]
    if kind == "node address":
        address = draw(st.sampled_from(["192.168.1.1", "192.168.1.2", "192.168.1.11", "10.10.2.1"]))
        return cluster_hostvars([pod("w1", address)], theirs), groups, policies, [
            "worker1: egress_workloads[0] (w1).address", f"{address} is node"]
    if kind == "router workload":
        return cluster_hostvars([pod("w1", "192.168.1.254")], theirs), groups, policies, [
            "egress_workloads[0] (w1).address", "is the default gateway"]
    if kind == "floating workload":
        return cluster_hostvars(mine, [pod("w2", "192.168.1.100")]), groups, policies, [
            "worker2: egress_workloads[0] (w2).address", "is a floating IP"]
    if kind == "other node":
        return cluster_hostvars(mine + [pod("stray", theirs[0]["address"].replace(".2.", ".3."))], theirs), \
            groups, policies, ["worker1: egress_workloads[1] (stray).address", "is not on a network of node worker1"]
    if kind == "outside pod cidrs":
        return cluster_hostvars([pod("w1", f"10.10.1.{draw(st.integers(128, 254))}")], theirs, ["10.10.1.0/25"]), \
            groups, policies, ["egress_workloads[0] (w1).address", "is not in the egress_nat_pod_cidrs of node worker1"]
    return cluster_hostvars(mine, theirs, [draw(BAD_CIDR)]), groups, policies, ["worker1: egress_nat_pod_cidrs[0]"]


def test_the_cluster_cases_start_from_a_valid_inventory():
    """Each case below is refused for what it changed, not for its base."""
    valid = cluster_hostvars([pod("w1", "10.10.1.5")], [pod("w2", "10.10.2.5")], ["10.10.1.0/24"], ["192.168.1.60"])
    assert FILTERS["egress_nat_plan"]([group()], [policy()], [], valid, ["gw1"], ["worker1", "worker2"])["policies"]


def as_plan_arguments(case):
    hostvars, groups, policies, fields = case
    return (groups, policies, [], hostvars, ["gw1"], ["worker1", "worker2"]), fields


FILTER_CASES = {  # subject in the figures -> (filter, strategy of (arguments, words the error must contain))
    "egress_nat_inventory": ("egress_nat_inventory", inventory_case()),
    "egress_nat_plan": ("egress_nat_plan", plan_case()),
    "first_floating_ip": ("first_floating_ip", first_floating_ip_case()),
    "select_workloads": ("select_workloads", select_workloads_case()),
    "allocate_floating_ips": ("allocate_floating_ips", allocate_case()),
    "egress_nat_plan: routers, addresses in use, workload addresses": (
        "egress_nat_plan", cluster_address_case().map(as_plan_arguments)),
}


@pytest.mark.parametrize("name", sorted(FILTER_CASES))
def test_filter_refuses_hostile_input(name):
    filter_name, strategy = FILTER_CASES[name]
    stats = {"tried": 0, "passed": 0}
    failures = []

    @SETTINGS
    @given(strategy)
    def one(case):
        args, fields = case
        stats["tried"] += 1
        try:
            value = FILTERS[filter_name](*args)
            failures.append(f"accepted {str(args)[:300]}: {str(value)[:200]}")
            return
        except AnsibleError as exc:
            message = str(exc)
        if all(field in message for field in fields):
            stats["passed"] += 1
        else:
            failures.append(f"{fields} not in {message[:300]}")

    one()
    harness.record("5 hostile input refused (filter)", name, stats["tried"], stats["passed"])
    assert stats["tried"] >= 200
    assert not failures, "\n".join(failures[:10])


# ---- the mesh's planning step (filter egress_mesh_plan): every problem names the host and the variable
MESH_FILTERS = EgressClientFilters().filters()
MESH_NETWORKS = [{"name": "eng", "cidr": ["100.64.1.0/24", "fd00:1::/64"], "ranges": ["192.168.50.0/24"]},
                 {"name": "fin", "cidr": ["100.64.2.0/24", "fd00:2::/64"], "ranges": ["192.168.60.0/24"]}]
MESH_ADDRESSES = ["100.64.1.1/24", "100.64.2.1/24", "fd00:1::1/64", "fd00:2::1/64"]


@st.composite
def mesh_case(draw):
    """(gateways, members), substrings the problems must contain."""
    gateways = {"gw1": {"networks": [dict(network) for network in MESH_NETWORKS], "interface": "nm0",
                        "interface_addresses": list(MESH_ADDRESSES)},
                "gw2": {"ranges": ["203.0.113.0/24"], "interface": "nm0", "interface_addresses": ["100.64.1.2/24"]}}
    members = {"m1": {"interface": "nm0", "addresses": ["100.64.1.11", "fd00:1::11"]},
               "m2": {"interface": "nm0", "addresses": ["100.64.2.11"]}}
    kind = draw(st.sampled_from(["same range", "same range nested excluded", "address", "address outside",
                                 "address not on the interface", "no address in the network", "range",
                                 "excluded", "second address"]))
    index = draw(st.integers(0, 1))
    network = gateways["gw1"]["networks"][index]
    if kind == "same range":
        cidr = network["ranges"][0]
        gateways["gw2"]["ranges"] = draw(st.permutations(["203.0.113.0/24", cidr.upper()]))
        return (gateways, members), [cidr, "gw1", "gw2", f"egress_gateway_networks[{index}].ranges[0]",
                                     f"m{index + 1}: "]
    if kind == "same range nested excluded":
        # Two different ranges whose remaining parts are the same destination.
        gateways["gw2"].update(ranges=["192.168.50.0/23"], excluded_ranges=["192.168.51.0/24"])
        return (gateways, members), ["192.168.50.0/24", "gw1", "gw2", "m1: "]
    if kind in ("address", "address outside"):
        network["address"] = draw(BAD_ADDRESS) if kind == "address" else draw(st.sampled_from(
            ["100.64.9.1", "192.168.50.1", "fd00:9::1", "10.0.0.1"]))
        return (gateways, members), ["gw1: ", f"egress_gateway_networks[{index}].address"]
    if kind == "second address":
        network["address"] = [f"100.64.{index + 1}.1", f"100.64.{index + 1}.{draw(st.integers(2, 254))}"]
        return (gateways, members), ["gw1: ", f"egress_gateway_networks[{index}].address[1]"]
    if kind == "address not on the interface":
        network["address"] = f"100.64.{index + 1}.{draw(st.integers(2, 254))}"
        return (gateways, members), ["gw1: ", f"egress_gateway_networks[{index}].address", "not an address"]
    if kind == "no address in the network":
        gateways["gw1"]["interface_addresses"] = [a for a in MESH_ADDRESSES if not a.startswith(f"100.64.{index + 1}.")]
        return (gateways, members), ["gw1: ", f"egress_gateway_networks[{index}].address", network["name"]]
    if kind == "range":
        ranges, position = put(network["ranges"], draw(st.integers(0, 2)), draw(BAD_CIDR))
        network["ranges"] = ranges
        return (gateways, members), ["gw1: ", f"egress_gateway_networks[{index}].ranges[{position}]"]
    excluded, position = put(["10.0.0.0/8"], draw(st.integers(0, 1)), draw(BAD_CIDR))
    gateways["gw2"]["excluded_ranges"] = excluded
    return (gateways, members), ["gw2: ", f"egress_gateway_excluded_ranges[{position}]"]


def test_mesh_plan_refuses_hostile_inventory():
    stats = {"tried": 0, "passed": 0}
    failures = []

    @SETTINGS
    @given(mesh_case())
    def one(case):
        (gateways, members), fields = case
        stats["tried"] += 1
        problems = "; ".join(MESH_FILTERS["egress_mesh_plan"](gateways, members)["problems"])
        if problems and all(field in problems for field in fields):
            stats["passed"] += 1
        else:
            failures.append(f"{fields} not in {problems[:300]!r} for {str(gateways)[:300]}")

    one()
    harness.record("5 hostile input refused (filter)", "egress_mesh_plan", stats["tried"], stats["passed"])
    assert stats["tried"] >= 200
    assert not failures, "\n".join(failures[:10])


# ---- no injection: valid random input renders scripts that parse back ------------------------
VALID_NAME = st.from_regex(NAME, fullmatch=True)
VALID_INTERFACE = st.from_regex(INTERFACE, fullmatch=True).filter(lambda text: text not in (".", ".."))
QUOTED = re.compile(r'"([^"]*)"')
IDENTIFIER = re.compile(r"(?m)^\s*(?:table inet|delete table inet|set|map|chain)\s+([^\s{;]+)|@([^\s{;,]+)|jump ([^\s,;}]+)")
SET_COMMENT = re.compile(r"/\d{1,3} (?:ranges to (\S+)|(?:ranges|sources) of network (\S+)|ranges of all networks)"
                         r" \(elements: network addresses\)")
OURS = re.compile(r"netkit_egress(_nat)?|netkit_\w+|p\d+_(src|dst|exc)|forward|postrouting|prerouting|select|steer|e\d+")
FIXED_COMMENTS = {nat_nft.SELECT_COMMENT, nat_nft.STEER_COMMENT}  # nat_policy's own, never from input


@st.composite
def valid_gateway_input(draw):
    names = draw(st.lists(VALID_NAME, min_size=1, max_size=3, unique=True))
    networks = [{"name": name, "cidr": [f"10.{index}.0.0/16"], "ranges": [f"192.168.{index}.0/24"]}
                for index, name in enumerate(names)]
    return {"network_interface": draw(VALID_INTERFACE), "interface": draw(VALID_INTERFACE),
            "networks": networks, "ranges": [], "nat": draw(st.booleans()), "state": "rendered"}


@st.composite
def valid_nat_input(draw):
    names = draw(st.lists(VALID_NAME, min_size=1, max_size=3, unique=True))
    config = [{"name": name, "egress_ip": f"192.168.1.{100 + index}", "sources": [f"10.10.{index}.0/24"],
               "destinations": ["203.0.113.0/24"], "interface": draw(VALID_INTERFACE)}
              for index, name in enumerate(names)]
    return {"role": draw(st.sampled_from(["gateway", "source"])), "state": "rendered", "config": config}


def nft_script(module, result):
    if module == "egress_gateway":
        return result["rendered"]
    lines = result["rendered"]
    return "\n".join(lines[1:lines.index("EOF")]) + "\n"


@pytest.mark.parametrize("module,strategy", [("egress_gateway", valid_gateway_input()),
                                             ("nat_policy", valid_nat_input())])
def test_valid_names_never_inject(topo, workers, module, strategy):
    lab, worker = topo, workers("gw")
    stats = {"tried": 0, "passed": 0}

    @settings(max_examples=60, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(args):
        result = worker.run(module, args)
        assert not result.get("failed"), result
        script = nft_script(module, result)
        stats["tried"] += 1
        lab.exec("gw", ["nft", "-c", "-f", "-"], data=script)
        allowed = {"network " + n["name"] for n in args.get("networks", [])} | \
            {"policy " + p["name"] for p in args.get("config", [])} | \
            {"egress " + p["egress_ip"] for p in args.get("config", [])} | \
            {args.get("network_interface"), args.get("interface")} | {p.get("interface") for p in args.get("config", [])} \
            | FIXED_COMMENTS
        # A per-length set's comment embeds the outbound interface or a network's name, nothing else.
        embedded = {args.get("interface")} | {"network " + n["name"] for n in args.get("networks", [])}
        quoted = [SET_COMMENT.fullmatch(text) or text for text in QUOTED.findall(script)]
        assert {text for text in quoted if isinstance(text, str)} <= allowed, script
        assert {match.group(1) or f"network {match.group(2)}" for match in quoted if not isinstance(match, str)
                if match.group(1) or match.group(2)} <= embedded, script
        unquoted = QUOTED.sub('""', script)
        identifiers = [name for match in IDENTIFIER.findall(unquoted) for name in match if name]
        assert identifiers and all(OURS.fullmatch(identifier) for identifier in identifiers), script
        stats["passed"] += 1

    one()
    harness.record("5 no injection (random valid names render, nft -c parses back)", module,
                   stats["tried"], stats["passed"])
