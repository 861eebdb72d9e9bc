"""Issue 11, mesh: two networks on one gateway, an internet gateway, and the planning play that refuses a bad
inventory before any host changes (playbooks/egress_gateway.yml, real namespaces, real TCP).
"""

import copy

import pytest
import yaml

import lab as mesh_lab

PORT = mesh_lab.WHOAMI_PORT
OFFICE4, OFFICE6, FINANCE4, FINANCE6 = "192.168.50.0/24", "2001:db8:50::/64", "192.168.60.0/24", "2001:db8:60::/64"
ENG = {"name": "eng", "cidr": ["100.64.1.0/24", "fd00:1::/64"], "ranges": [OFFICE4, OFFICE6]}
FIN = {"name": "fin", "cidr": ["100.64.2.0/24", "fd00:2::/64"], "ranges": [FINANCE4, FINANCE6],
       "address": ["100.64.2.1"]}  # IPv4 given, IPv6 found on the interface inside fd00:2::/64


def run(lab, tmp_path, spec, check=False):
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return mesh_lab.netlab.ansible_playbook(mesh_lab.PLAYBOOK, str(path), check=check, json_output=False)


def converge(lab, tmp_path, spec):
    rc, text = run(lab, tmp_path, spec)
    assert rc == 0, text
    return {host: counts["changed"] for host, counts in mesh_lab.playbook_recap(text).items() if counts["changed"]}


def our_routes(lab, host):
    return sorted(line.strip() for family in ("-4", "-6")
                  for line in lab.sh(host, f"ip {family} route show proto 201").stdout.splitlines())


def snapshots(lab):
    return {host: lab.snapshot(host) for host in lab.hosts}


def host_vars(lab, host, **variables):
    return dict({"ansible_host": lab.ns(host)}, **variables)


def inventory(gateways, clients):
    return {"all": {"vars": {"ansible_connection": "netkit.egress.netns",
                             "ansible_python_interpreter": "/usr/bin/python3"},
                    "children": {"egress_gateways": {"hosts": gateways},
                                 "egress_clients": {"vars": {"egress_client_network_interface": "nm0"},
                                                    "hosts": clients}}}}


# ---- two networks on one gateway ------------------------------------------------------------
@pytest.fixture
def two_networks(lab):
    """gw serves eng (100.64.1.0/24, fd00:1::/64) and fin (100.64.2.0/24, fd00:2::/64) on one nm0, with one
    address in each; the office server behind eth1, the finance server behind eth2; members e1 and f1."""
    for host in ("sw", "gw", "e1", "f1", "srv", "fsrv", "gw2"):
        lab.add_host(host)
    lab.bridge("sw", "br0")
    for host, cidrs in (("gw", ["100.64.1.1/24", "100.64.2.1/24", "fd00:1::1/64", "fd00:2::1/64"]),
                        ("e1", ["100.64.1.11/24", "fd00:1::11/64"]), ("f1", ["100.64.2.11/24", "fd00:2::11/64"]),
                        ("gw2", ["100.64.1.2/24"])):
        lab.attach("sw", "br0", host, "nm0")
        for cidr in cidrs:
            lab.addr(host, "nm0", cidr)
    for ifname, server, prefix4, prefix6 in (("eth1", "srv", "192.168.50", "2001:db8:50:"),
                                             ("eth2", "fsrv", "192.168.60", "2001:db8:60:")):
        lab.link("gw", ifname, server, "eth0")
        lab.addr("gw", ifname, f"{prefix4}.1/24")
        lab.addr("gw", ifname, f"{prefix6}:1/64")
        lab.addr(server, "eth0", f"{prefix4}.10/24")
        lab.addr(server, "eth0", f"{prefix6}:10/64")
        lab.start_whoami(server, PORT)
    return lab


def two_networks_inventory(lab, fin=None, gw2=None, e1_interface="nm0"):
    gateways = {"gw": host_vars(lab, "gw", egress_gateway_network_interface="nm0",
                                egress_gateway_networks=[ENG, fin or FIN])}
    if gw2 is not None:
        gateways["gw2"] = host_vars(lab, "gw2", egress_gateway_network_interface="nm0", **gw2)
    return inventory(gateways, {"e1": host_vars(lab, "e1", egress_client_network_interface=e1_interface),
                                "f1": host_vars(lab, "f1")})


def test_members_of_two_networks_route_their_own_ranges_through_their_own_gateway_address(two_networks, tmp_path):
    lab = two_networks
    before = snapshots(lab)
    # Bad inventories: refused in the planning play, naming the host and the variable; no namespace changed.
    for spec, message in (
            (two_networks_inventory(lab, fin=dict(FIN, address="100.64.3.1")),
             "gw: egress_gateway_networks[1].address: '100.64.3.1' is not inside the network's cidr 100.64.2.0/24"),
            (two_networks_inventory(lab, fin=dict(FIN, address="100.64.2.9")),
             "gw: egress_gateway_networks[1].address: 100.64.2.9 is not an address of its network interface nm0"),
            (two_networks_inventory(lab, gw2={"egress_gateway_ranges": [OFFICE4]}),
             f"e1: {OFFICE4} is offered by gw (egress_gateway_networks[0].ranges[0], via 100.64.1.1) and by gw2 "
             "(egress_gateway_ranges[0], via 100.64.1.2)"),
            (two_networks_inventory(lab, e1_interface="nm9"),
             'egress_client_network_interface: interface "nm9" does not exist on this host'),
            # A role variable outside the three lists: the role's argument spec, checked for every gateway by
            # the planning play's filter; the gateway play does not check it again.
            (two_networks_inventory(lab, gw2={"egress_gateway_ranges": ["203.0.113.0/24"],
                                              "egress_gateway_backend": "nft"}),
             "gw2: options of the role netkit.egress.egress_gateway: value of egress_gateway_backend must be one of: "
             "auto, nftables, iptables, got: nft")):
        rc, text = run(lab, tmp_path, spec)
        assert rc != 0 and message in text, text
        assert snapshots(lab) == before, f"a refused inventory changed a host: {message}"

    spec = two_networks_inventory(lab)
    assert set(converge(lab, tmp_path, spec)) == {"gw", "e1", "f1"}
    assert our_routes(lab, "e1") == sorted([f"{OFFICE4} via 100.64.1.1 dev nm0 metric 100",
                                            f"{OFFICE6} via fd00:1::1 dev nm0 metric 100 pref medium"])
    assert our_routes(lab, "f1") == sorted([f"{FINANCE4} via 100.64.2.1 dev nm0 metric 100",
                                            f"{FINANCE6} via fd00:2::1 dev nm0 metric 100 pref medium"])
    # Real TCP through the gateway's NAT, each member to its own network's servers only.
    assert lab.whoami("e1", "192.168.50.10") == "192.168.50.1"
    assert lab.whoami("e1", "2001:db8:50::10") == "2001:db8:50::1"
    assert lab.whoami("f1", "192.168.60.10") == "192.168.60.1"
    assert lab.whoami("f1", "2001:db8:60::10") == "2001:db8:60::1"
    for member, address in (("e1", "192.168.60.10"), ("e1", "2001:db8:60::10"), ("f1", "192.168.50.10"),
                            ("f1", "2001:db8:50::10")):
        assert "via" not in lab.sh(member, f"ip route get {address}", check=False).stdout
        assert lab.whoami(member, address, timeout=1.0) is None
    assert converge(lab, tmp_path, spec) == {}, "the second run must change nothing"


# ---- internet gateway -----------------------------------------------------------------------
INTERNET4, INTERNET6 = "198.18.0.10", "2001:db8:ffff::10"
UPLINK4, UPLINK6 = "203.0.113.1", "2001:db8:ff00::1"


@pytest.fixture
def internet(lab):
    """The lab (gw, members m1 m2 on nm0, office server srv behind eth1) plus an uplink up0 from gw to a
    router "inet" that holds the internet servers' addresses; gw's default routes point there. inet has no
    route back to the mesh network (only the gateway's NAT makes replies come back)."""
    mesh_lab.build(lab)
    lab.add_host("inet")
    lab.link("gw", "up0", "inet", "eth0")
    lab.addr("gw", "up0", f"{UPLINK4}/24")
    lab.addr("gw", "up0", f"{UPLINK6}/64")
    lab.addr("inet", "eth0", "203.0.113.254/24")
    lab.addr("inet", "eth0", "2001:db8:ff00::254/64")
    lab.addr("inet", "lo", f"{INTERNET4}/32")
    lab.addr("inet", "lo", f"{INTERNET6}/128")
    lab.sh("gw", "ip -4 route add default via 203.0.113.254 dev up0")
    for host in ("srv", "inet", "gw", "m2"):
        lab.start_whoami(host, PORT)
    return lab


def internet_inventory(lab):
    spec = copy.deepcopy(mesh_lab.inventory(lab))
    gw = spec["all"]["children"]["egress_gateways"]["hosts"]["gw"]
    gw["egress_gateway_ranges"] = ["0.0.0.0/0", "::/0", OFFICE4, OFFICE6]
    return spec


def test_internet_gateway_both_families_members_keep_the_gateway_the_network_and_its_lan(internet, tmp_path):
    lab = internet
    spec = internet_inventory(lab)
    # No IPv6 default route on the gateway yet: ::/0 is refused before any host changes (no probe of a
    # special address picks some interface).
    before = snapshots(lab)
    rc, text = run(lab, tmp_path, spec)
    assert rc != 0 and "ranges[1]: ::/0 (internet) leaves by the ipv6 default route, and the host has none" in text
    assert snapshots(lab) == before

    lab.sh("gw", "ip -6 route add default via 2001:db8:ff00::254 dev up0")
    assert set(converge(lab, tmp_path, spec)) == {"gw", "m1", "m2"}
    assert our_routes(lab, "m1") == sorted([
        "default via 10.100.0.1 dev nm0 metric 100", "default via fd00:100::1 dev nm0 metric 100 pref medium",
        f"{OFFICE4} via 10.100.0.1 dev nm0 metric 100", f"{OFFICE6} via fd00:100::1 dev nm0 metric 100 pref medium"])
    ruleset = lab.sh("gw", "nft list table inet netkit_egress").stdout
    assert 'oifname "up0"' in ruleset and 'oifname "nm0" ip' not in ruleset.replace("ct state", "")
    # Internet egress, both families, through the gateway's NAT (inet has no route to the mesh network).
    for member, source in (("m1", "10.100.0.11"), ("m2", "10.100.0.12")):
        assert lab.whoami(member, INTERNET4) == UPLINK4
        assert lab.whoami(member, INTERNET6) == UPLINK6
        # The gateway's LAN (a range too) keeps leaving by eth1; the gateway itself is reached directly.
        assert lab.whoami(member, "192.168.50.10") == "192.168.50.1"
        assert lab.whoami(member, "2001:db8:50::10") == "2001:db8:50::1"
        assert lab.whoami(member, "10.100.0.1") == source
    # The network: member to member, not through the gateway.
    assert lab.whoami("m1", "10.100.0.12") == "10.100.0.11"
    assert lab.whoami("m1", "fd00:100::12") == "fd00:100::11"
    # The gateway's own traffic: its own addresses, its LAN and the internet unaffected by our rules.
    assert lab.whoami("gw", "192.168.50.10") == "192.168.50.1"
    assert lab.whoami("gw", INTERNET6) == UPLINK6
    assert converge(lab, tmp_path, spec) == {}, "the second run must change nothing"
