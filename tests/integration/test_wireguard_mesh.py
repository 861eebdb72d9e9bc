"""A WireGuard mesh end to end (namespaces, wireguard-go, real TCP): playbooks/wireguard_mesh.yml, then
playbooks/egress_gateway.yml unchanged on top of it with the network interface wg0."""

from __future__ import annotations

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
