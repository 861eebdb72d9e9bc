"""netkit.egress.wireguard on its own, in namespaces with wireguard-go: check mode and diff, ownership,
bad input with nothing changed, state absent."""

from __future__ import annotations

import shutil

import pytest

import wireguard_lab as wl

pytestmark = pytest.mark.skipif(not shutil.which("wireguard-go"), reason="needs wireguard-go")

KEY_A = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
KEY_B = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
BASE = {"addresses": ["10.100.0.11/24", "fd00:100::11/64"], "listen_port": 51820}


@pytest.fixture
def member(lab, tmp_path):
    wl.build(lab, members=("m1",))
    return wl.write_inventory(tmp_path, wl.inventory(lab, members=("m1",)))


def test_check_mode_diff_idempotence_and_absent(lab, member):
    peers = [{"name": "gw", "public_key": KEY_A, "endpoint": "192.0.2.1:51820",
              "allowed_ips": ["192.168.50.0/24", "10.100.0.1"], "persistent_keepalive": 25}]
    before = wl.host_state(lab, "m1")
    rc, result, text = wl.module(member, "m1", dict(BASE, peers=peers), check=True, diff=True)
    assert rc == 0 and result["changed"], result
    assert result["public_key"] is None and result["implementation"] == "wireguard-go"
    # The diff (printed by the callback): the peer and the addresses appear, nothing was there before.
    assert f"+peer {KEY_A} (gw) allowed-ips 10.100.0.1/32,192.168.50.0/24 endpoint 192.0.2.1:51820 keepalive 25" in text
    assert "+address 10.100.0.11/24" in text
    assert wl.host_state(lab, "m1") == before

    rc, result, text = wl.module(member, "m1", dict(BASE, peers=peers), diff=True)
    assert rc == 0 and result["changed"], result
    assert result["public_key"] == wl.public_key(lab, "m1")
    assert wl.wg_dump(lab, "m1") == {KEY_A: (frozenset({"10.100.0.1/32", "192.168.50.0/24"}), "192.0.2.1:51820")}
    assert wl.private_key(lab, "m1") not in text

    rc, result, _text = wl.module(member, "m1", dict(BASE, peers=peers))
    assert rc == 0 and not result["changed"] and result["commands"] == [], result

    # A changed peer: only the difference, predicted by check mode exactly.
    peers[0]["allowed_ips"] = ["192.168.60.0/24", "10.100.0.1/32"]
    rc, predicted, _text = wl.module(member, "m1", dict(BASE, peers=peers), check=True)
    rc, applied, _text = wl.module(member, "m1", dict(BASE, peers=peers))
    assert predicted["commands"] == applied["commands"]
    assert any("allowed-ips 10.100.0.1/32,192.168.60.0/24" in command for command in applied["commands"])

    rc, result, _text = wl.module(member, "m1", {"state": "absent"})
    assert rc == 0 and result["changed"], result
    assert wl.wg_dump(lab, "m1") is None
    assert lab.host_exec("m1", ["ls", "/etc/wireguard"]).stdout.split() == []
    rc, result, _text = wl.module(member, "m1", {"state": "absent"})
    assert rc == 0 and not result["changed"]


def test_foreign_interface_and_peer_are_left_alone(lab, member):
    # An interface of the same name that the module did not create.
    lab.host_exec("m1", ["wireguard-go", "wg1"])
    lab.host_exec("m1", ["wg", "set", "wg1", "peer", KEY_B, "allowed-ips", "10.9.0.0/24"])
    before = wl.host_state(lab, "m1")
    rc, result, _text = wl.module(member, "m1", dict(BASE, interface="wg1", peers=[]))
    assert rc != 0 and "interface: 'wg1' exists and netkit.egress did not create it" in result.get("msg", ""), result
    rc, result, _text = wl.module(member, "m1", {"interface": "wg1", "state": "absent"})
    assert rc == 0 and not result["changed"]
    assert wl.host_state(lab, "m1") == before

    # A foreign peer on our interface keeps its ranges, and none of ours may take them.
    rc, result, _text = wl.module(member, "m1", dict(BASE, peers=[]))
    assert rc == 0
    lab.host_exec("m1", ["wg", "set", "wg0", "peer", KEY_B, "allowed-ips", "10.9.0.0/24"])
    peers = [{"public_key": KEY_A, "allowed_ips": ["10.9.0.0/25"]}]
    rc, result, _text = wl.module(member, "m1", dict(BASE, peers=peers))
    assert rc != 0 and "peers[0].allowed_ips[0]: '10.9.0.0/25' overlaps 10.9.0.0/24 of peer " + KEY_B in result["msg"]
    rc, result, _text = wl.module(member, "m1", dict(BASE, peers=[{"public_key": KEY_A, "allowed_ips": ["10.8.0.0/24"]}]))
    assert rc == 0 and result["foreign_peers"] == [KEY_B]
    rc, result, _text = wl.module(member, "m1", dict(BASE, peers=[]))
    assert rc == 0 and wl.wg_dump(lab, "m1") == {KEY_B: (frozenset({"10.9.0.0/24"}), "(none)")}


@pytest.mark.parametrize("args, field", [
    ({"peers": [{"public_key": "not-a-key"}]}, "peers[0].public_key: 'not-a-key' is not a WireGuard key"),
    ({"peers": [{"public_key": KEY_A[:-2] + "x="}]}, "peers[0].public_key"),
    ({"peers": [{"public_key": KEY_A, "endpoint": "192.0.2.1"}]}, "peers[0].endpoint: '192.0.2.1' is not an endpoint"),
    ({"peers": [{"public_key": KEY_A, "endpoint": "[2001:db8::1:51820"}]}, "peers[0].endpoint"),
    ({"peers": [{"public_key": KEY_A, "endpoint": "$(reboot):51820"}]}, "peers[0].endpoint"),
    ({"peers": [{"public_key": KEY_A, "endpoint": "2001:db8::1:51820"}]}, "write an IPv6 address in brackets"),
    ({"peers": [{"public_key": KEY_A, "allowed_ips": ["10.0.0.0/8"]},
                {"public_key": KEY_B, "allowed_ips": ["10.1.0.0/16"]}]},
     "peers[1].allowed_ips[0]: '10.1.0.0/16' overlaps peers[0].allowed_ips[0] 10.0.0.0/8"),
    ({"peers": [{"public_key": KEY_A}, {"public_key": KEY_A}]}, "peers[1].public_key"),
    ({"peers": [{"public_key": KEY_A, "name": "a\nPostUp = reboot"}]}, "peers[0].name"),
    ({"peers": [{"public_key": KEY_A, "allowed_ips": ["10.0.0.0/33"]}]}, "peers[0].allowed_ips[0]"),
    ({"peers": [{"public_key": KEY_A, "persistent_keepalive": 70000}]}, "peers[0].persistent_keepalive"),
    ({"interface": "wg0;reboot"}, "interface: 'wg0;reboot' is not a valid interface name"),
    ({"private_key_file": "/etc/wireguard/k;reboot"}, "private_key_file"),
    ({"addresses": ["10.100.0.11/24", "10.100.0.12/24"]}, "addresses[1]"),
    ({"addresses": ["10.100.0.300/24"]}, "addresses[0]"),
    ({"listen_port": 70000}, "listen_port: 70000 is not a port number"),
])
def test_bad_input_names_the_field_and_changes_nothing(lab, member, args, field):
    before = wl.host_state(lab, "m1")
    rc, result, text = wl.module(member, "m1", dict(BASE, **args))
    assert rc != 0 and field in result.get("msg", ""), result
    assert wl.host_state(lab, "m1") == before


def test_a_failing_apply_rolls_back_to_nothing(lab, member):
    """The listen port is taken by another program: wg set fails after the key and the interface were made;
    the engine removes both again and no config is written."""
    import subprocess
    import sys
    import time

    holder = subprocess.Popen(["ip", "netns", "exec", lab.ns("m1"), sys.executable, "-c",
                               "import socket,time\n"
                               "s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n"
                               "s.bind(('::',51820))\n"
                               "time.sleep(60)\n"])
    try:
        time.sleep(0.5)
        before = wl.host_state(lab, "m1")
        rc, result, _text = wl.module(member, "m1", dict(BASE, peers=[]))
        assert rc != 0 and "applying wireguard peers failed" in result["msg"], result
        assert "the host is as it was" in result["msg"], result
        time.sleep(0.5)  # wireguard-go exits once its interface is gone
        assert wl.host_state(lab, "m1") == before
        assert lab.host_exec("m1", ["ls", "/run/wireguard"]).stdout.split() == []
    finally:
        holder.kill()
        holder.wait(timeout=5)
