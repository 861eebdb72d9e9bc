"""The mesh egress gateway end to end: inventory -> playbooks/egress_gateway.yml -> real packets.

The lab of lab/lab.py (members m1, m2 and gateway gw on the network nm0, office server srv behind gw),
plus a second gateway gw2 that is also a client (ingress and egress on one node), with a server lan2
behind it.
"""

import copy

import pytest
import yaml

import lab as mesh_lab

OFFICE4, OFFICE6, EXTRA4, LAN2 = "192.168.50.0/24", "2001:db8:50::/64", "198.51.100.0/24", "203.0.113.0/24"
GW4, GW6, GW2_4 = "10.100.0.1", "fd00:100::1", "10.100.0.2"
SERVER4, SERVER6, LAN2_SERVER = "192.168.50.10", "2001:db8:50::10", "203.0.113.10"
CONVERGED_HOSTS = ["gw", "gw2", "m1", "m2"]
FOREIGN_ROUTE = f"{EXTRA4} via {GW4} dev nm0 proto static metric 50"


@pytest.fixture
def mesh(lab):
    mesh_lab.build(lab)
    lab.add_host("gw2")
    lab.add_host("lan2")
    lab.attach("sw", "br0", "gw2", "nm0")
    lab.addr("gw2", "nm0", f"{GW2_4}/24")
    lab.addr("gw2", "nm0", "fd00:100::2/64")
    lab.link("gw2", "eth1", "lan2", "eth0")
    lab.addr("gw2", "eth1", "203.0.113.1/24")
    lab.addr("lan2", "eth0", f"{LAN2_SERVER}/24")
    # The extra range lies behind gw's uplink (nothing answers there; it only needs a route).
    lab.route("gw", EXTRA4, dev="eth1")
    # A route on m1 that the collection did not create, to a destination it will route too.
    lab.sh("m1", f"ip route add {FOREIGN_ROUTE}")
    lab.start_whoami("srv", mesh_lab.WHOAMI_PORT)
    lab.start_whoami("lan2", mesh_lab.WHOAMI_PORT)
    return lab


def inventory(lab, gw_ranges=(OFFICE4, OFFICE6, EXTRA4), gw_state="present"):
    spec = copy.deepcopy(mesh_lab.inventory(lab))
    groups = spec["all"]["children"]
    gw = groups["egress_gateways"]["hosts"]["gw"]
    gw["egress_gateway_ranges"] = list(gw_ranges)
    gw["egress_gateway_state"] = gw_state
    groups["egress_gateways"]["hosts"]["gw2"] = {
        "ansible_host": lab.ns("gw2"), "egress_gateway_network_interface": "nm0",
        "egress_gateway_ranges": [LAN2]}
    # gw2 is a client too: it takes its network interface from egress_gateway_network_interface.
    groups["egress_clients"]["hosts"]["gw2"] = {}
    return spec


def run_playbook(lab, tmp_path, check=False, diff=False, limit=None, **inventory_kwargs):
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory(lab, **inventory_kwargs), sort_keys=False))
    return mesh_lab.netlab.ansible_playbook(mesh_lab.PLAYBOOK, str(path), check=check, diff=diff, limit=limit,
                                            json_output=False)


def converge(lab, tmp_path, **kwargs):
    rc, text = run_playbook(lab, tmp_path, **kwargs)
    assert rc == 0, text
    return mesh_lab.playbook_recap(text), text


def our_routes(lab, host):
    """Routes with the collection's protocol number, as `ip route` prints them."""
    return sorted(line.strip() for family in ("-4", "-6")
                  for line in lab.sh(host, f"ip {family} route show proto 201").stdout.splitlines())


def changed(recap):
    return {host: counts["changed"] for host, counts in recap.items() if counts["changed"]}


def snapshots(lab):
    return {host: lab.snapshot(host) for host in CONVERGED_HOSTS}


def test_clients_reach_the_office_through_the_gateways_nat(mesh, tmp_path):
    assert mesh.whoami("m1", SERVER4) is None, "before the playbook m1 has no route to the office"
    before = snapshots(mesh)

    rc, text = run_playbook(mesh, tmp_path, gw_ranges=(OFFICE4, OFFICE6, "10.0.0.0/33"))
    assert rc != 0
    assert "ranges[2]: '10.0.0.0/33' is not a valid CIDR" in text
    assert snapshots(mesh) == before, "refused input changed a host"

    recap, text = converge(mesh, tmp_path, check=True, diff=True)
    assert snapshots(mesh) == before, "check mode changed a host"
    assert set(changed(recap)) == set(CONVERGED_HOSTS), "check mode must predict the changes"
    assert f"+{OFFICE4} via {GW4} dev nm0 metric 100" in text

    recap = converge(mesh, tmp_path)[0]
    assert set(changed(recap)) == set(CONVERGED_HOSTS)
    assert our_routes(mesh, "m1") == sorted([
        f"{OFFICE4} via {GW4} dev nm0 metric 100", f"{EXTRA4} via {GW4} dev nm0 metric 100",
        f"{LAN2} via {GW2_4} dev nm0 metric 100", f"{OFFICE6} via {GW6} dev nm0 metric 100 pref medium"])
    # gw2 is a gateway and a client: routes to gw's ranges, none to its own.
    assert our_routes(mesh, "gw2") == sorted([
        f"{OFFICE4} via {GW4} dev nm0 metric 100", f"{EXTRA4} via {GW4} dev nm0 metric 100",
        f"{OFFICE6} via {GW6} dev nm0 metric 100 pref medium"])
    assert our_routes(mesh, "gw") == []

    # The office server knows only its own subnet: the answers prove the gateway's NAT.
    for member in ("m1", "m2", "gw2"):
        assert mesh.whoami(member, SERVER4) == "192.168.50.1"
        assert mesh.whoami(member, SERVER6) == "2001:db8:50::1"
    assert mesh.whoami("m1", LAN2_SERVER) == "203.0.113.1"

    recap = converge(mesh, tmp_path)[0]
    assert changed(recap) == {}, "the second run must change nothing"


def test_inventory_changes_remove_exactly_the_routes_that_went_away(mesh, tmp_path):
    converge(mesh, tmp_path)
    routes_before = our_routes(mesh, "m1")

    # Only the clients, gateways not in the run: their addresses are read from their network interface.
    recap = converge(mesh, tmp_path, limit="m1")[0]
    assert changed(recap) == {}

    recap = converge(mesh, tmp_path, gw_ranges=(OFFICE4, OFFICE6))[0]
    assert our_routes(mesh, "m1") == [r for r in routes_before if not r.startswith(EXTRA4)]
    assert FOREIGN_ROUTE.replace(" proto static", "") in mesh.sh("m1", "ip route show proto static").stdout
    assert mesh.whoami("m1", SERVER4) == "192.168.50.1"

    recap = converge(mesh, tmp_path, gw_ranges=(OFFICE4, OFFICE6), gw_state="absent")[0]
    assert changed(recap).keys() >= {"gw", "m1", "m2", "gw2"}
    assert our_routes(mesh, "m1") == [f"{LAN2} via {GW2_4} dev nm0 metric 100"]
    assert our_routes(mesh, "gw2") == []
    assert "netkit" not in mesh.sh("gw", "nft list tables").stdout
    assert "NETKIT" not in mesh.sh("gw", "iptables-save; ip6tables-save").stdout
    assert mesh.whoami("m1", SERVER4) is None
    assert mesh.whoami("m1", LAN2_SERVER) == "203.0.113.1", "the other gateway keeps working"
    assert FOREIGN_ROUTE.replace(" proto static", "") in mesh.sh("m1", "ip route show proto static").stdout


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_excluded_ranges_are_neither_routed_nor_forwarded(mesh, tmp_path, backend):
    """gw serves the office minus an excluded part of each family: the members' routes cover exactly the
    rest (CIDR subtraction), they reach a server there through the gateway's NAT, and not a server in the
    excluded part."""
    excluded4, excluded6 = "192.168.50.200", "2001:db8:50:0:8000::10"
    mesh.addr("srv", "eth0", excluded4 + "/24")
    mesh.addr("srv", "eth0", excluded6 + "/64")
    spec = inventory(mesh, gw_ranges=(OFFICE4, OFFICE6))
    spec["all"]["children"]["egress_gateways"]["hosts"]["gw"].update(
        egress_gateway_excluded_ranges=["192.168.50.128/25", "2001:db8:50:0:8000::/65"],
        egress_gateway_backend=backend, egress_gateway_iptables_variant="legacy")
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    for run in ("converge", "again"):
        rc, text = mesh_lab.netlab.ansible_playbook(mesh_lab.PLAYBOOK, str(path), json_output=False)
        assert rc == 0, text
        if run == "again":
            assert changed(mesh_lab.playbook_recap(text)) == {}, "the second run must change nothing"

    assert our_routes(mesh, "m1") == sorted([
        f"192.168.50.0/25 via {GW4} dev nm0 metric 100", f"{LAN2} via {GW2_4} dev nm0 metric 100",
        f"2001:db8:50::/65 via {GW6} dev nm0 metric 100 pref medium"])
    assert "NETKIT" in mesh.sh("gw", "iptables-legacy-save").stdout if backend == "iptables" else \
        "netkit_egress" in mesh.sh("gw", "nft list tables").stdout
    assert mesh.whoami("m1", SERVER4) == "192.168.50.1"
    assert mesh.whoami("m1", SERVER6) == "2001:db8:50::1"
    assert mesh.whoami("m1", excluded4, timeout=1.0) is None
    assert mesh.whoami("m1", excluded6, timeout=1.0) is None
