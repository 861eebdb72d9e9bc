"""A WireGuard mesh end to end (namespaces, wireguard-go, real TCP): playbooks/wireguard_mesh.yml, then
playbooks/egress_gateway.yml unchanged on top of it with the network interface wg0."""

from __future__ import annotations

import os
import shutil

import pytest

import wireguard_lab as wl

pytestmark = pytest.mark.skipif(not shutil.which("wireguard-go") or not shutil.which("wg"),
                                reason="needs wireguard-go and wireguard-tools")


def converge(tmp_path, spec, playbooks=(wl.MESH_PLAYBOOK, wl.EGRESS_PLAYBOOK), outputs=None):
    path = wl.write_inventory(tmp_path, spec)
    recaps = []
    for playbook in playbooks:
        rc, text, recap = wl.playbook(playbook, path)
        assert rc == 0, text[-6000:]
        if outputs is not None:
            outputs.append(text)
        recaps.append(recap)
    return recaps


def changed(recap):
    return {host: counts["changed"] for host, counts in recap.items() if counts["changed"]}


def test_mesh_reaches_the_office_through_the_tunnel(lab, tmp_path):
    wl.build(lab)
    outputs = []
    spec = wl.inventory(lab)
    converge(tmp_path, spec, outputs=outputs)
    keys = {host: wl.public_key(lab, host) for host in wl.MEMBERS}

    # Every member peers with every other; gw's peer carries its egress ranges on every member.
    for host in wl.MEMBERS:
        peers = wl.wg_dump(lab, host)
        assert set(peers) == {keys[other] for other in wl.MEMBERS if other != host}, host
        if host != "gw":
            allowed, endpoint = peers[keys["gw"]]
            assert allowed == {"10.100.0.1/32", "fd00:100::1/128", wl.OFFICE, wl.OFFICE2}, host
            assert endpoint == f"{wl.UNDERLAY['gw']}:{wl.WG_PORT}"
    assert wl.wg_dump(lab, "m1")[keys["m2"]][0] == {"10.100.0.12/32", "fd00:100::12/128"}

    # A member reaches the office server through the tunnel, NATed: the server sees the gateway's address.
    capture = wl.Capture(lab, "m1", "eth0", "not arp and not icmp6")
    seen = lab.whoami("m1", wl.SERVER)
    packets = capture.stop()
    assert seen == "192.168.50.1"
    # ... and the underlay carries only WireGuard's UDP between the members' ports: nothing in clear.
    assert packets, "no packet captured on the underlay"
    assert all(" UDP" in line and f".{wl.WG_PORT}" in line for line in packets), packets
    assert not any(".8080" in line or wl.SERVER in line for line in packets), packets

    # Idempotent: a second run of both playbooks changes nothing.
    mesh_recap, egress_recap = converge(tmp_path, spec, outputs=outputs)
    assert changed(mesh_recap) == {} and changed(egress_recap) == {}

    # A peer and a route that the collection did not create, on m1's wg0.
    foreign = lab.host_exec("m1", ["wg", "genkey"]).stdout.strip()
    foreign_key = lab.host_exec("m1", ["wg", "pubkey"], data=foreign + "\n").stdout.strip()
    lab.host_exec("m1", ["wg", "set", "wg0", "peer", foreign_key, "allowed-ips", "10.200.0.0/24"])
    lab.sh("m1", "ip route add 10.200.0.0/24 dev wg0")

    # Check mode predicts the removal of a range and changes nothing.
    before = {host: wl.wg_dump(lab, host) for host in wl.MEMBERS}
    path = wl.write_inventory(tmp_path, wl.inventory(lab, gw_ranges=(wl.OFFICE,)))
    rc, text, recap = wl.playbook(wl.MESH_PLAYBOOK, path, check=True, diff=True)
    outputs.append(text)
    assert rc == 0, text[-4000:]
    assert set(changed(recap)) == {"m1", "m2", "m3"}
    assert f"-peer {keys['gw']}" in text or wl.OFFICE2 in text
    assert {host: wl.wg_dump(lab, host) for host in wl.MEMBERS} == before

    # The range removed: gone from AllowedIPs and from the routes on every member; foreign peer and route stay.
    converge(tmp_path, wl.inventory(lab, gw_ranges=(wl.OFFICE,)), outputs=outputs)
    for host in ("m1", "m2", "m3"):
        allowed, _endpoint = wl.wg_dump(lab, host)[keys["gw"]]
        assert wl.OFFICE2 not in allowed and wl.OFFICE in allowed, host
        routes = lab.sh(host, "ip -4 route show").stdout
        assert wl.OFFICE2 not in routes and wl.OFFICE in routes, host
    assert wl.wg_dump(lab, "m1")[foreign_key][0] == {"10.200.0.0/24"}
    assert "10.200.0.0/24 dev wg0" in lab.sh("m1", "ip -4 route show").stdout
    assert lab.whoami("m2", wl.SERVER) == "192.168.50.1"

    # Boot: what the boot unit runs (wg-quick up on the persisted config) brings m2's interface back.
    expected = wl.wg_dump(lab, "m2")
    mode = lab.host_exec("m2", ["stat", "-c", "%a", "/etc/wireguard/wg0.conf", "/etc/wireguard/wg0.key"]).stdout.split()
    assert mode == ["600", "600"]
    lab.sh("m2", "ip link del wg0")
    assert wl.wg_dump(lab, "m2") is None
    lab.host_exec("m2", ["wg-quick", "up", "wg0"])
    assert wl.wg_dump(lab, "m2") == {key: (allowed, endpoint) for key, (allowed, endpoint) in expected.items()}
    assert wl.public_key(lab, "m2") == keys["m2"]

    # No private key of any member in anything the playbooks printed (default output, check and diff).
    secrets = [wl.private_key(lab, host) for host in wl.MEMBERS]
    assert all(len(secret) == 44 for secret in secrets)
    for text in outputs:
        for secret in secrets:
            assert secret not in text


BAD_INVENTORIES = [
    ({"m2": {"wireguard_endpoint": "192.0.2.12;reboot"}}, "m2: wireguard_endpoint: '192.0.2.12;reboot'"),
    ({"m2": {"wireguard_endpoint": "[2001:db8::12]:99999"}}, "m2: wireguard_endpoint"),
    ({"m1": {"wireguard_address": "10.100.0.11"}}, "m1: wireguard_address: '10.100.0.11' needs the overlay"),
    ({"m1": {"wireguard_address": ["10.100.0.11/24", "10.100.0.12/24"]}}, "m1: wireguard_address[1]"),
    ({"m2": {"wireguard_address": "10.100.1.12/24"}}, "is not in the mesh's network 10.100.0.0/24"),
    ({"m2": {"wireguard_address": "10.100.0.11/24"}}, "overlaps 10.100.0.11/32 of m1: wireguard_address"),
    ({"m1": {"wireguard_interface": "wg0$(reboot)"}}, "m1: wireguard_interface: 'wg0$(reboot)'"),
    ({"m1": {"wireguard_ingress": True, "wireguard_ext_clients": [{"name": "../../etc/x", "address": "10.100.0.201"}]}},
     "m1: wireguard_ext_clients[0].name: '../../etc/x' is not a valid name"),
    ({"m1": {"wireguard_ingress": True, "wireguard_ext_clients": [{"name": "laptop", "address": "10.99.0.201"}]}},
     "m1: wireguard_ext_clients[0].address: '10.99.0.201/32' is not inside the mesh's network 10.100.0.0/24"),
    ({"m1": {"wireguard_ext_clients": [{"name": "laptop", "address": "10.100.0.201"}]}},
     "m1: wireguard_ext_clients: needs wireguard_ingress: true"),
]


def test_bad_inventory_names_the_field_and_changes_nothing(lab, tmp_path):
    members = ("m1", "m2", "m3")
    wl.build(lab, members=members)
    before = {host: wl.host_state(lab, host) for host in members}
    cases = BAD_INVENTORIES
    # Two egress gateways claiming overlapping ranges: refused naming both.
    overlap = wl.inventory(lab, members=members)
    gateways = overlap["all"]["children"]["egress_gateways"]["hosts"]
    gateways["m1"] = {"ansible_host": lab.ns("m1"), "egress_gateway_ranges": ["192.168.50.0/24"]}
    gateways["m2"] = {"ansible_host": lab.ns("m2"), "egress_gateway_ranges": ["192.168.50.128/25"]}
    specs = [(wl.inventory(lab, members=members, member_vars=member_vars), expected) for member_vars, expected in cases]
    specs.append((overlap, "m2: egress_gateway_ranges: '192.168.50.128/25' overlaps 192.168.50.0/24 of "
                           "m1: egress_gateway_ranges"))
    for index, (spec, expected) in enumerate(specs):
        path = wl.write_inventory(tmp_path, spec, f"bad{index}.yml")
        rc, text, _recap = wl.playbook(wl.MESH_PLAYBOOK, path)
        assert rc != 0, text[-3000:]
        assert expected in text, (expected, text[-3000:])
        assert {host: wl.host_state(lab, host) for host in members} == before, expected

    # Check mode on a fresh mesh: no key exists yet, nothing is generated or created.
    path = wl.write_inventory(tmp_path, wl.inventory(lab, members=members), "check.yml")
    rc, text, recap = wl.playbook(wl.MESH_PLAYBOOK, path, check=True, diff=True)
    assert rc == 0, text[-3000:]
    assert set(changed(recap)) == set(members)
    assert {host: wl.host_state(lab, host) for host in members} == before

    # On a converged mesh, a bad value changes nothing either.
    converge(tmp_path, wl.inventory(lab, members=members), playbooks=(wl.MESH_PLAYBOOK,))
    converged = {host: wl.host_state(lab, host) for host in members}
    path = wl.write_inventory(tmp_path, wl.inventory(lab, members=members, member_vars=dict(BAD_INVENTORIES[0][0])),
                              "bad-late.yml")
    rc, text, _recap = wl.playbook(wl.MESH_PLAYBOOK, path)
    assert rc != 0 and BAD_INVENTORIES[0][1] in text
    assert {host: wl.host_state(lab, host) for host in members} == converged

    # A member leaving the mesh: its interface, config and key go, the others drop its peer.
    m3_key = wl.public_key(lab, "m3")
    spec = wl.inventory(lab, members=members, member_vars={"m3": {"wireguard_state": "absent"}})
    converge(tmp_path, spec, playbooks=(wl.MESH_PLAYBOOK,))
    assert wl.wg_dump(lab, "m3") is None
    assert lab.host_exec("m3", ["ls", "/etc/wireguard"]).stdout.split() == []
    for host in ("m1", "m2"):
        assert m3_key not in wl.wg_dump(lab, host) and len(wl.wg_dump(lab, host)) == 1


def bring_up_client(lab, client, config_text):
    """A laptop or phone: the generated wg-quick config brought up with wg-quick in its own namespace."""
    directory = f"/etc/netns/{lab.ns(client)}/wireguard"
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "wgc.conf"), "w") as handle:
        handle.write(config_text)
    os.chmod(os.path.join(directory, "wgc.conf"), 0o600)
    lab.host_exec(client, ["wg-quick", "up", "wgc"])


def test_ext_clients_reach_the_office_and_revoked_ones_cannot(lab, tmp_path):
    wl.build(lab)
    for client, address in (("c1", "192.0.2.101"), ("c2", "192.0.2.102")):
        lab.add_host(client)
        lab.attach("sw", "br0", client, "eth0")
        lab.addr(client, "eth0", f"{address}/24")
    client_dir = tmp_path / "clients"
    laptop = {"name": "laptop", "address": ["10.100.0.201", "fd00:100::201"]}
    phone = {"name": "phone", "address": "10.100.0.202"}
    # m3 is an ingress node; gw is ingress and egress at once.
    member_vars = {"m3": {"wireguard_ingress": True, "wireguard_ext_clients": [laptop]},
                   "gw": {"wireguard_ingress": True, "wireguard_ext_clients": [phone]}}
    spec = wl.inventory(lab, member_vars=member_vars, mesh_vars={"wireguard_ext_client_dir": str(client_dir)})
    outputs = []
    converge(tmp_path, spec, outputs=outputs)

    assert oct(client_dir.stat().st_mode & 0o777) == "0o700"
    for name in ("laptop", "phone"):
        assert oct((client_dir / f"{name}.conf").stat().st_mode & 0o777) == "0o600"
        assert (client_dir / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (client_dir / f"{name}.qr.txt").stat().st_size > 100
    laptop_config = (client_dir / "laptop.conf").read_text()
    assert f"PublicKey = {wl.public_key(lab, 'm3')}" in laptop_config
    assert f"Endpoint = {wl.UNDERLAY['m3']}:{wl.WG_PORT}" in laptop_config
    assert f"AllowedIPs = 10.100.0.0/24, {wl.OFFICE}, {wl.OFFICE2}, fd00:100::/64" in laptop_config
    assert "Address = 10.100.0.201/32, fd00:100::201/128" in laptop_config
    client_secrets = [(client_dir / f"{name}.key").read_text().strip() for name in ("laptop", "phone")]

    # Every member routes the clients' addresses to their ingress node.
    keys = {host: wl.public_key(lab, host) for host in wl.MEMBERS}
    for host in ("m1", "m2", "gw"):
        assert {"10.100.0.201/32", "fd00:100::201/128"} <= wl.wg_dump(lab, host)[keys["m3"]][0], host
    assert "10.100.0.202/32" in wl.wg_dump(lab, "m1")[keys["gw"]][0]

    bring_up_client(lab, "c1", laptop_config)
    bring_up_client(lab, "c2", (client_dir / "phone.conf").read_text())
    assert lab.whoami("c1", wl.SERVER) == "192.168.50.1"      # laptop -> m3 -> gw -> office, NATed
    assert lab.whoami("c2", wl.SERVER) == "192.168.50.1"      # phone -> gw (ingress and egress) -> office

    # Revoking the laptop removes its peer on m3 and its address from every member; its files go too.
    member_vars["m3"]["wireguard_ext_clients"] = []
    spec = wl.inventory(lab, member_vars=member_vars, mesh_vars={"wireguard_ext_client_dir": str(client_dir)})
    converge(tmp_path, spec, playbooks=(wl.MESH_PLAYBOOK,), outputs=outputs)
    laptop_key = lab.host_exec("c1", ["wg", "show", "wgc", "public-key"]).stdout.strip()
    assert laptop_key not in wl.wg_dump(lab, "m3")
    for host in ("m1", "m2", "gw"):
        assert "10.100.0.201/32" not in wl.wg_dump(lab, host)[keys["m3"]][0], host
    assert lab.whoami("c1", wl.SERVER, timeout=2.0) is None
    assert lab.whoami("c2", wl.SERVER) == "192.168.50.1"
    assert sorted(path.name for path in client_dir.iterdir()) == ["phone.conf", "phone.key", "phone.png",
                                                                  "phone.qr.txt"], outputs[-1][-5000:]
    for text in outputs:
        for secret in client_secrets + [wl.private_key(lab, host) for host in wl.MEMBERS]:
            assert secret not in text


INTERNET_SERVER, INTERNET_SERVER6 = "203.0.113.10", "2001:db8:113::10"
UNDERLAY6 = {"m1": "2001:db8:2::11", "m2": "2001:db8:2::12", "gw": "2001:db8:2::1"}
TO_INTERNET = f"host {INTERNET_SERVER} or host {INTERNET_SERVER6}"


def build_internet(lab):
    """A router rtr on the underlay (192.0.2.254) to the 'internet' 203.0.113.0/24, where inet runs a server;
    m1, m2 and gw use rtr as their default route, so m1 could reach inet directly, around the tunnel."""
    wl.build(lab, members=("m1", "m2", "gw"))
    lab.add_host("rtr", forwarding=True)
    lab.attach("sw", "br0", "rtr", "eth0")
    lab.addr("rtr", "eth0", "192.0.2.254/24")
    lab.addr("rtr", "eth0", "2001:db8:2::254/64")
    lab.add_host("inet")
    lab.link("rtr", "eth1", "inet", "eth0")
    lab.addr("rtr", "eth1", "203.0.113.1/24")
    lab.addr("rtr", "eth1", "2001:db8:113::1/64")
    lab.addr("inet", "eth0", f"{INTERNET_SERVER}/24")
    lab.addr("inet", "eth0", f"{INTERNET_SERVER6}/64")
    lab.route("inet", "default", via="203.0.113.1")
    lab.route("inet", "::/0", via="2001:db8:113::1")
    for host in ("m1", "m2", "gw"):
        lab.addr(host, "eth0", f"{UNDERLAY6[host]}/64")
        lab.route(host, "default", via="192.0.2.254")
        lab.route(host, "::/0", via="2001:db8:2::254")
    lab.start_whoami("inet", 8080)
    lab.start_whoami("m2", 8080)


def internet_inventory(lab, internet_gateway=True, fail_open=False):
    return wl.inventory(lab, members=("m1", "m2", "gw"), gw_ranges=(wl.OFFICE, "0.0.0.0/0", "::/0"),
                        member_vars={"m1": {"wireguard_internet_gateway": internet_gateway,
                                            "wireguard_fail_open": fail_open}})


def test_internet_gateway_fails_closed(lab, tmp_path):
    build_internet(lab)
    assert lab.whoami("m1", INTERNET_SERVER) == "192.0.2.11"     # before: straight out of the underlay
    converge(tmp_path, internet_inventory(lab))
    keys = {host: wl.public_key(lab, host) for host in ("m1", "m2", "gw")}
    assert {"0.0.0.0/0", "::/0"} <= wl.wg_dump(lab, "m1")[keys["gw"]][0]
    # m2 did not opt in: it holds the default routes in AllowedIPs (egress_client routes every member to every
    # range, at metric 100), but its own IPv4 default route (metric 0) wins and no policy routing is added.
    assert "0.0.0.0/0" in wl.wg_dump(lab, "m2")[keys["gw"]][0]
    assert "51820" not in lab.sh("m2", "ip -4 rule show").stdout

    # Through the tunnel, both families: inet sees the gateway's (masqueraded) underlay address, not m1's.
    capture = wl.Capture(lab, "m1", "eth0", TO_INTERNET)
    assert lab.whoami("m1", INTERNET_SERVER) == "192.0.2.1"
    assert lab.whoami("m1", INTERNET_SERVER6) == UNDERLAY6["gw"]
    assert capture.stop() == []
    assert lab.whoami("m2", INTERNET_SERVER) == "192.0.2.12"        # m2 is not affected
    assert lab.whoami("m1", "192.0.2.12") == "192.0.2.11"           # m1's own LAN stays direct
    assert lab.whoami("m1", wl.SERVER) == "192.168.50.1"            # the office still through the tunnel
    # Idempotent.
    mesh_recap, egress_recap = converge(tmp_path, internet_inventory(lab))
    assert changed(mesh_recap) == {} and changed(egress_recap) == {}

    # The gateway gone: m1's internet traffic is dropped, nothing leaves m1's underlay towards inet.
    lab.sh("gw", "ip link del wg0")
    capture = wl.Capture(lab, "m1", "eth0", TO_INTERNET)
    assert lab.whoami("m1", INTERNET_SERVER, timeout=2.0) is None
    assert lab.whoami("m1", INTERNET_SERVER6, timeout=2.0) is None
    assert capture.stop() == []
    # Even with m1's own tunnel interface gone (fail-closed: an unreachable default below it).
    lab.sh("m1", "ip link del wg0")
    capture = wl.Capture(lab, "m1", "eth0", TO_INTERNET)
    assert lab.whoami("m1", INTERNET_SERVER, timeout=2.0) is None
    assert lab.whoami("m1", INTERNET_SERVER6, timeout=2.0) is None
    assert capture.stop() == []

    # Fail-open: with the tunnel interface gone, internet traffic takes the underlay.
    converge(tmp_path, internet_inventory(lab, fail_open=True), playbooks=(wl.MESH_PLAYBOOK,))
    assert lab.whoami("m1", INTERNET_SERVER) == "192.0.2.1"
    lab.sh("m1", "ip link del wg0")
    assert lab.whoami("m1", INTERNET_SERVER) == "192.0.2.11"

    # Off: the policy routing is gone, the internet is direct again, the rules and table are removed.
    converge(tmp_path, internet_inventory(lab, internet_gateway=False), playbooks=(wl.MESH_PLAYBOOK,))
    assert lab.whoami("m1", INTERNET_SERVER) == "192.0.2.11"
    assert "51820" not in lab.sh("m1", "ip -4 rule show").stdout
    assert "51820" not in lab.sh("m1", "ip -6 rule show").stdout
    assert lab.sh("m1", "ip -4 route show table 51820", check=False).stdout.strip() == ""
