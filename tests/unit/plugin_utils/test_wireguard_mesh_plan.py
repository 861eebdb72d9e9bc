"""The WireGuard mesh planner (controller side): peers and AllowedIPs from inventory, and its refusals."""

import pytest

from ansible_collections.netkit.egress.plugins.filter import wireguard_mesh as filters
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError
from ansible_collections.netkit.egress.plugins.plugin_utils import _wireguard_mesh as planner

KEYS = {"m1": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "m2": "z2t+7SIDos581VjxD0YyJd8DvCF2LzYVUyLCK0+msns=",
        "gw": "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="}
CLIENT_KEY = "/95xVf7In0WYrpPoyG5adU5uuHQ2MOm9nirybrWu4U4="


def hostvars(**overrides):
    hosts = {
        "m1": {"wireguard_address": "10.100.0.11/24", "wireguard_endpoint": "192.0.2.11"},
        "m2": {"wireguard_address": ["10.100.0.12/24", "fd00:100::12/64"], "wireguard_endpoint": "192.0.2.12:51999",
               "wireguard_listen_port": 51999},
        "gw": {"wireguard_address": ["10.100.0.1/24", "fd00:100::1/64"], "wireguard_endpoint": "[2001:db8::1]",
               "egress_gateway_ranges": ["192.168.50.0/24", "192.168.60.0/24", "2001:db8:50::/64"],
               "egress_gateway_excluded_ranges": ["192.168.60.128/25"]},
    }
    for name, values in overrides.items():
        hosts[name].update(values)
    for name, key in KEYS.items():
        hosts[name].setdefault("wireguard_mesh_public_key", key)
    return hosts


def peers_of(plan, host):
    return {peer["name"]: peer for peer in plan["hosts"][host]["peers"]}


def test_every_member_peers_with_every_other_and_gateways_carry_their_ranges():
    plan = planner.plan(["m1", "m2", "gw"], hostvars(), ["gw"])
    m1 = peers_of(plan, "m1")
    assert sorted(m1) == ["gw", "m2"]
    assert m1["gw"] == {"name": "gw", "public_key": KEYS["gw"], "endpoint": "[2001:db8::1]:51820",
                        "allowed_ips": ["10.100.0.1/32", "192.168.50.0/24", "192.168.60.0/25", "2001:db8:50::/64",
                                        "fd00:100::1/128"], "persistent_keepalive": 0}
    assert m1["m2"]["endpoint"] == "192.0.2.12:51999"
    assert m1["m2"]["allowed_ips"] == ["10.100.0.12/32", "fd00:100::12/128"]
    assert sorted(peers_of(plan, "gw")) == ["m1", "m2"]
    assert plan["hosts"]["m2"]["listen_port"] == 51999 and plan["pending"] == []
    assert plan["networks"] == ["10.100.0.0/24", "fd00:100::/64"]


def test_a_removed_range_leaves_every_member():
    before = planner.plan(["m1", "m2", "gw"], hostvars(), ["gw"])
    after = planner.plan(["m1", "m2", "gw"], hostvars(gw={"egress_gateway_ranges": ["192.168.50.0/24"]}), ["gw"])
    for host in ("m1", "m2"):
        assert "2001:db8:50::/64" in peers_of(before, host)["gw"]["allowed_ips"]
        assert peers_of(after, host)["gw"]["allowed_ips"] == ["10.100.0.1/32", "192.168.50.0/24", "fd00:100::1/128"]
    absent = planner.plan(["m1", "m2", "gw"], hostvars(gw={"egress_gateway_state": "absent"}), ["gw"])
    assert peers_of(absent, "m1")["gw"]["allowed_ips"] == ["10.100.0.1/32", "fd00:100::1/128"]


def test_members_without_a_key_yet_are_pending():
    hosts = hostvars()
    del hosts["m2"]["wireguard_mesh_public_key"]
    plan = planner.plan(["m1", "m2", "gw"], hosts, ["gw"])
    assert sorted(peers_of(plan, "m1")) == ["gw"]
    assert plan["pending"] == ["m1: peer m2 (its public key is not known yet)",
                               "gw: peer m2 (its public key is not known yet)"]


def test_ext_clients_and_internet_gateway():
    hosts = hostvars(gw={"egress_gateway_ranges": ["192.168.50.0/24", "0.0.0.0/0"], "wireguard_ingress": True,
                         "wireguard_endpoint": "192.0.2.1",
                         "wireguard_ext_clients": [{"name": "phone", "address": "10.100.0.201"}]},
                     m1={"wireguard_internet_gateway": True})
    plan = planner.plan(["m1", "m2", "gw"], hosts, ["gw"], ext_client_keys={"phone": CLIENT_KEY})
    assert peers_of(plan, "m1")["gw"]["allowed_ips"] == [
        "0.0.0.0/0", "10.100.0.1/32", "10.100.0.201/32", "192.168.50.0/24", "fd00:100::1/128"]
    # On every member (egress_client routes them all to every range), but only m1 prefers it to its own default.
    assert "0.0.0.0/0" in peers_of(plan, "m2")["gw"]["allowed_ips"]
    assert plan["hosts"]["m1"]["internet_route"] == {"table": 51820, "fwmark": 51820, "priority": 5000,
                                                     "fail_open": False}
    assert plan["hosts"]["m2"]["internet_route"] is None
    assert peers_of(plan, "gw")["ext-phone"] == {"name": "ext-phone", "public_key": CLIENT_KEY, "endpoint": None,
                                                 "allowed_ips": ["10.100.0.201/32"], "persistent_keepalive": 0}
    assert plan["hosts"]["gw"]["forwarding"] is True
    (client,) = plan["hosts"]["gw"]["ext_clients"]
    assert client["allowed_ips"] == ["10.100.0.0/24", "192.168.50.0/24", "fd00:100::/64"]
    text = filters.wireguard_ext_client_config(client, KEYS["m1"])
    assert text.splitlines()[1:4] == ["[Interface]", f"PrivateKey = {KEYS['m1']}", "Address = 10.100.0.201/32"]
    assert f"PublicKey = {KEYS['gw']}" in text and "Endpoint = 192.0.2.1:51820" in text


@pytest.mark.parametrize("overrides, egress, message", [
    ({"m1": {"wireguard_address": None}}, ["gw"], "m1: wireguard_address: is required"),
    ({"m1": {"wireguard_address": "10.100.0.11/32"}}, ["gw"], "m1: wireguard_address: '10.100.0.11/32' needs the"),
    ({"m2": {"wireguard_address": "10.100.0.11/24"}}, ["gw"],
     "m2: wireguard_address: '10.100.0.11/32' overlaps 10.100.0.11/32 of m1: wireguard_address"),
    ({"m2": {"wireguard_endpoint": "x y"}}, ["gw"], "m2: wireguard_endpoint: 'x y' is not an endpoint"),
    ({"m2": {"wireguard_interface": "wg0\n"}}, ["gw"], "m2: wireguard_interface"),
    ({"m2": {"wireguard_mesh_public_key": "AAAA"}}, ["gw"], "m2: wireguard_mesh_public_key"),
    ({"m2": {"egress_gateway_ranges": ["192.168.50.0/25"]}}, ["gw", "m2"],
     "gw: egress_gateway_ranges: '192.168.50.0/24' overlaps 192.168.50.0/25 of m2: egress_gateway_ranges"),
    ({"gw": {"egress_gateway_ranges": ["10.100.0.0/16"]}}, ["gw"], "overlaps the mesh's own network 10.100.0.0/24"),
    ({"m1": {"wireguard_internet_gateway": True}}, ["gw"], "m1: wireguard_internet_gateway: True needs an egress"),
    ({"m1": {"wireguard_ingress": True, "wireguard_ext_clients": [{"name": "a", "address": "10.100.0.12"}]}}, ["gw"],
     "m2: wireguard_address: '10.100.0.12/32' overlaps 10.100.0.12/32 of m1: wireguard_ext_clients[0] (a)"),
    ({"m1": {"wireguard_ingress": True, "wireguard_ext_clients": [{"name": "a;b", "address": "10.100.0.200"}]}},
     ["gw"], "m1: wireguard_ext_clients[0].name: 'a;b' is not a valid name"),
    ({"m1": {"wireguard_ingress": True, "wireguard_ext_clients": [{"name": "a", "address": "10.100.0.0/28"}]}},
     ["gw"], "is not one address"),
    ({"m1": {"wireguard_ingress": True, "wireguard_endpoint": None,
             "wireguard_ext_clients": [{"name": "a", "address": "10.100.0.200"}]}}, ["gw"],
     "m1: wireguard_endpoint: is required on an ingress node"),
    ({"m1": {"wireguard_ingress": "maybe"}}, ["gw"], "m1: wireguard_ingress: 'maybe' is not a boolean"),
])
def test_bad_inventory_names_host_and_variable(overrides, egress, message):
    with pytest.raises(InputError) as error:
        planner.plan(["m1", "m2", "gw"], hostvars(**overrides), egress)
    assert message in str(error.value)


def test_the_filter_reads_only_mesh_variables_and_wraps_errors():
    hosts = hostvars()
    hosts["m1"]["unrelated"] = object()
    plan = filters.wireguard_mesh_plan(["m1", "m2", "gw"], hosts, ["gw"])
    assert sorted(plan["hosts"]) == ["gw", "m1", "m2"]
    with pytest.raises(filters.AnsibleFilterError, match="wireguard_mesh_plan: m2: wireguard_endpoint"):
        filters.wireguard_mesh_plan(["m1", "m2"], hostvars(m2={"wireguard_endpoint": "bad host"}))
    with pytest.raises(filters.AnsibleFilterError) as error:
        filters.wireguard_ext_client_config({}, "secret-looking-but-wrong")
    assert "secret-looking" not in str(error.value)
