"""_vrrp: the model's errors, the keepalived/conntrackd/boot renderers, the fence's decisions, the priorities
from the allocation, and the lab's split-ARP detector."""

import json
import os
import sys

import pytest

from ansible_collections.netkit.egress.plugins.module_utils import _net as net
from ansible_collections.netkit.egress.plugins.module_utils._vrrp_gateway import boot, conntrackd, fence, keepalived, model
from ansible_collections.netkit.egress.plugins.module_utils._vrrp_gateway.paths import Paths
from ansible_collections.netkit.egress.plugins.plugin_utils import _vrrp_plan

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "lab"))
import failover_lab  # noqa: E402

PATHS = Paths("/etc/netkit-egress/vrrp", "/run/netkit-egress", "/etc/systemd/system")
ON_HOST = [model.HostAddress("eth0", "192.168.1.11", 24), model.HostAddress("eth1", "10.255.0.1", 24)]


def params(**overrides):
    base = {"instances": [{"address": "192.168.1.100", "vrid": 1, "priority": 200},
                          {"address": "192.168.1.101", "vrid": 2, "priority": 190}],
            "interface": None, "source_address": None, "unicast_peers": ["192.168.1.12", "192.168.1.11"],
            "advert_interval": 0.1, "garp_repeat": 5, "garp_refresh": 10, "drain": False, "track_interfaces": [],
            "track_nft_table": "inet netkit_egress_nat", "conntrack_sync": False, "sync_interface": None,
            "sync_peers": []}
    base.update(overrides)
    return base


def test_gateway_resolves_interface_prefix_and_source_and_drops_itself_from_peers():
    gateway = model.gateway(params(), ON_HOST)
    assert gateway.instances[0] == model.Instance("nk_192_168_1_100", "192.168.1.100", 24, "eth0", 1, 200)
    assert gateway.source_address == "192.168.1.11"
    assert gateway.peers == ("192.168.1.12",)


def test_drain_gives_every_instance_the_lowest_priority():
    gateway = model.gateway(params(drain=True), ON_HOST)
    assert {item.priority for item in gateway.instances} == {model.DRAIN_PRIORITY}


@pytest.mark.parametrize("overrides, message", [
    ({"instances": [{"address": "192.168.1.300", "vrid": 1, "priority": 1}]},
     "instances[0].address: '192.168.1.300' is not a valid IP address"),
    ({"instances": [{"address": "10.9.9.9", "vrid": 1, "priority": 1}]},
     "instances[0].address: '10.9.9.9' is not inside the subnet of any interface"),
    ({"instances": [{"address": "192.168.1.11", "vrid": 1, "priority": 1}]},
     "instances[0].address: '192.168.1.11' is an address of eth0 on this host"),
    ({"instances": [{"address": "192.168.1.100", "vrid": 1, "priority": 1},
                    {"address": "192.168.1.101", "vrid": 1, "priority": 1}]},
     "instances[1].vrid: 1 is also the vrid of 192.168.1.100"),
    ({"instances": [{"address": "192.168.1.100", "vrid": 256, "priority": 1}]},
     "instances[0].vrid: 256 is out of range (1-255)"),
    ({"instances": [{"address": "192.168.1.100", "vrid": 1, "priority": 255}]},
     "instances[0].priority: 255 is out of range (1-254)"),
    ({"instances": [{"address": "2001:db8::1", "vrid": 1, "priority": 1}]},
     "instances[0].address: '2001:db8::1' is not an IPv4 address"),
    ({"advert_interval": 0.001}, "advert_interval: 0.001 is out of range"),
    ({"unicast_peers": ["192.168.1.12", "nope"]}, "unicast_peers[1]: 'nope' is not a valid IP address"),
    ({"track_nft_table": "netkit_egress_nat"}, "track_nft_table: 'netkit_egress_nat' is not 'FAMILY NAME'"),
    ({"conntrack_sync": True}, "sync_interface: is required with conntrack_sync"),
    ({"conntrack_sync": True, "sync_interface": "eth9"}, "sync_interface: 'eth9' has no IPv4 address"),
    ({"conntrack_sync": True, "sync_interface": "eth1"}, "sync_peers: needs the sync address"),
    ({"source_address": "192.168.1.50"}, "source_address: '192.168.1.50' is not an address of this host"),
])
def test_bad_input_names_the_field_and_value(overrides, message):
    with pytest.raises(net.InputError) as caught:
        model.gateway(params(**overrides), ON_HOST)
    assert str(caught.value).startswith(message), str(caught.value)


def test_keepalived_conf_is_vrrpv3_unicast_with_fence_track_and_notify_fifo():
    text = keepalived.render(model.gateway(params(), ON_HOST), PATHS)
    assert "vrrp_version 3" in text
    assert "vrrp_notify_fifo /run/netkit-egress/vrrp_notify.fifo" in text
    assert ('vrrp_notify_fifo_script "/etc/netkit-egress/vrrp/netkit-vrrp-notify '
            '/etc/netkit-egress/vrrp/notify.json"') in text
    instance = text.split("vrrp_instance nk_192_168_1_100 {")[1].split("\n}\n")[0]
    for line in ("state BACKUP", "interface eth0", "virtual_router_id 1", "priority 200", "advert_int 0.1",
                 "unicast_src_ip 192.168.1.11", "192.168.1.100/24 dev eth0 label eth0:nk", "nk_fence weight 0",
                 "garp_master_refresh 10", "nk_uplink"):
        assert line in instance, line
    assert "unicast_peer {\n    192.168.1.12\n  }" in instance
    assert keepalived.render(model.gateway(params(), ON_HOST), PATHS) == text, "pure and deterministic"


def test_track_script_checks_default_route_nat_table_and_return_routes():
    script = keepalived.render_track_script(model.gateway(params(track_return_routes=2), ON_HOST))
    assert "ip -4 route show default" in script
    assert "nft list table inet netkit_egress_nat" in script
    assert '"$(ip -4 route show table main proto 201 | wc -l)" -ge 2' in script


def test_conntrackd_unicast_for_one_peer_multicast_for_more_and_ignores_only_gateways():
    one = model.gateway(params(conntrack_sync=True, sync_interface="eth1", sync_peers=["10.255.0.2"]), ON_HOST)
    text = conntrackd.render(one, PATHS)
    assert "Mode FTFW" in text and "IPv4_Destination_Address 10.255.0.2" in text and "Interface eth1" in text
    assert "Path /run/netkit-egress/conntrackd.sock" in text
    ignored = text.split("Address Ignore {")[1].split("}")[0]
    expected = {"127.0.0.1", "10.255.0.1", "10.255.0.2", "192.168.1.11", "192.168.1.12"}
    assert set(ignored.split()) - {"IPv4_address"} == expected
    many = model.gateway(params(conntrack_sync=True, sync_interface="eth1",
                                sync_peers=["10.255.0.2", "10.255.0.3"]), ON_HOST)
    assert "Multicast {" in conntrackd.render(many, PATHS)


def test_start_program_runs_keepalived_in_the_foreground_under_setsid_with_private_pid_files():
    gateway = model.gateway(params(conntrack_sync=True, sync_interface="eth1", sync_peers=["10.255.0.2"]), ON_HOST)
    start = boot.render_start(gateway, PATHS)
    assert ("setsid keepalived -P -n -l -f /etc/netkit-egress/vrrp/keepalived.conf -p /run/netkit-egress/"
            "keepalived.pid -r /run/netkit-egress/keepalived-vrrp.pid") in start
    assert start.index("conntrackd -C") < start.index("setsid keepalived"), "sync is up before VRRP"
    assert "rm -f /run/netkit-egress/keepalived.pid" in start, "stale pid files go first"
    units = boot.render_units(gateway, PATHS)
    assert "ExecStart=/usr/sbin/keepalived -P -n -l" in units["netkit-egress-keepalived.service"]
    assert "netkit-egress-conntrackd.service" in units


def test_notify_lines_and_conntrack_hooks():
    assert fence.parse_notify_line('INSTANCE "nk_192_168_1_100" MASTER 200\n') == (
        "INSTANCE", "nk_192_168_1_100", "MASTER", 200)
    assert fence.parse_notify_line("garbage") is None
    assert fence.parse_notify_line('INSTANCE "nk_192_168_1_100" MASTER_RX_LOWER_PRI 200') is None
    assert [argv[-1] for argv in fence.conntrack_hook_argvs("MASTER", "/c")] == ["-c", "-f", "-R", "-B"]
    assert [argv[-1] for argv in fence.conntrack_hook_argvs("BACKUP", "/c")] == ["-t", "-n"]


def test_fence_script_drops_arp_in_and_out_for_every_floating_ip():
    script = fence.fence_script(["192.168.1.100"])
    assert "add rule arp netkit_vrrp_fence input arp daddr ip 192.168.1.100 drop" in script
    assert "add rule arp netkit_vrrp_fence output arp saddr ip 192.168.1.100 drop" in script


def test_fence_after_a_stop_faults_keepalived_and_lifts_only_once_it_left_master(tmp_path):
    calls = []
    config = {"instances": {"nk_a": {"address": "192.168.1.100", "prefix_length": 24, "interface": "eth0"}},
              "state_file": str(tmp_path / "state.json"), "track_file": str(tmp_path / "track"),
              "conntrackd_config": None}
    handler = fence.Fence(config, run=lambda argv, **kwargs: calls.append((argv, kwargs.get("input"))),
                          clock=lambda: 5.0)
    handler.on_line('INSTANCE "nk_a" MASTER 200')
    handler.on_keepalived_stopped()
    assert ["ip", "address", "del", "192.168.1.100/24", "dev", "eth0"] in [argv for argv, _data in calls]
    assert (tmp_path / "track").read_text() == "1\n"
    assert json.loads((tmp_path / "state.json").read_text())["instances"]["nk_a"]["state"] == "FENCED"
    assert not handler.may_lift_stop_fence()
    handler.on_line('INSTANCE "nk_a" FAULT 200')
    assert handler.may_lift_stop_fence()
    handler.lift_stop_fence()
    assert (tmp_path / "track").read_text() == "0\n" and not handler.fenced


class FakeArp:
    mac = b"\x02\x00\x00\x00\x00\x01"

    def __init__(self):
        self.sent = []

    def send(self, frame):
        self.sent.append(frame)


def test_quiet_chain_drops_every_arp_frame_for_the_address_on_egress_except_answers_to_probes():
    script = fence.quiet_script({"192.168.1.101", "192.168.1.100"}, "eth0")
    assert 'type filter hook egress device "eth0" priority -300' in script
    assert "ether type arp arp saddr ip @quiet arp daddr ip != 0.0.0.0 drop" in script
    assert "add element netdev netkit_vrrp_quiet quiet { 192.168.1.100, 192.168.1.101 }" in script
    assert script.startswith("table netdev netkit_vrrp_quiet {}\ndelete table netdev netkit_vrrp_quiet\n")


def test_arp_frames_and_who_else_claims_an_address():
    own, other = FakeArp.mac, b"\x02\x00\x00\x00\x00\x02"
    probe = fence.probe_frame(own, "192.168.1.100")
    assert probe[28:32] == b"\x00\x00\x00\x00" and probe[38:42] == bytes([192, 168, 1, 100])
    assert fence.claimed_by_others(probe, other) is None, "a probe claims nothing"
    announce = fence.announce_frame(own, "192.168.1.100")
    assert fence.claimed_by_others(announce, own) is None, "our own frame"
    assert fence.claimed_by_others(announce, other) == "192.168.1.100"
    reply = fence.arp_frame(other, 2, other, "192.168.1.100", own, "0.0.0.0", destination=own)
    assert fence.claimed_by_others(reply, own) == "192.168.1.100"
    assert fence.claimed_by_others(b"\x00" * 60, own) is None


def test_a_new_master_stays_quiet_until_nobody_else_claims_the_address(tmp_path):
    calls, clock, arp = [], [100.0], FakeArp()
    config = {"instances": {"nk_a": {"address": "192.168.1.100", "prefix_length": 24, "interface": "eth0"}},
              "state_file": str(tmp_path / "state.json"), "track_file": str(tmp_path / "track"),
              "conntrackd_config": None, "garp_repeat": 3}
    handler = fence.Fence(config, run=lambda argv, **kwargs: calls.append(kwargs.get("input") or ""),
                          clock=lambda: 5.0, monotonic=lambda: clock[0], arp=arp)
    handler.start(held=set())
    assert handler.quiet == {"192.168.1.100"} and "192.168.1.100" in calls[0]
    handler.on_line('INSTANCE "nk_a" MASTER 200')
    assert len(arp.sent) == 1 and arp.sent[0][28:32] == b"\x00\x00\x00\x00", "probed, from 0.0.0.0"
    clock[0] += 0.02
    handler.contested({"192.168.1.100"})  # the old master still answers
    clock[0] += 0.02
    handler.tick()
    assert handler.quiet == {"192.168.1.100"}, "still quiet: another MAC answered within the window"
    for _step in range(3):
        clock[0] += fence.PROBE_INTERVAL
        handler.tick()
    assert handler.quiet == set() and "add element" not in calls[-1]
    announcements = [frame for frame in arp.sent if frame[28:32] == bytes([192, 168, 1, 100])]
    assert len(announcements) == 3, "gratuitous ARP only once the quiet is lifted"
    # A master that hears a lower priority's advert stays master: it neither goes quiet nor changes state.
    handler.on_line('INSTANCE "nk_a" MASTER_RX_LOWER_PRI 200')
    assert handler.quiet == set() and handler.states["nk_a"]["state"] == "MASTER"
    handler.on_line('INSTANCE "nk_a" BACKUP 200')
    assert handler.quiet == {"192.168.1.100"} and not handler.claims


def test_a_reload_of_the_holder_claims_its_addresses_again_and_a_fence_stops_claims(tmp_path):
    config = {"instances": {"nk_a": {"address": "192.168.1.100", "prefix_length": 24, "interface": "eth0"}},
              "state_file": str(tmp_path / "state.json"), "track_file": str(tmp_path / "track"),
              "conntrackd_config": None}
    arp = FakeArp()
    handler = fence.Fence(config, run=lambda argv, **kwargs: None, clock=lambda: 5.0, monotonic=lambda: 1.0, arp=arp)
    handler.start(held={"192.168.1.100"})
    assert "nk_a" in handler.claims and len(arp.sent) == 1
    handler.fence()
    assert handler.claims == {} and handler.quiet == {"192.168.1.100"}


def test_priorities_follow_the_allocation_and_the_next_holder():
    plan = {"allocation": {"192.168.1.100": "gw2", "192.168.1.101": "gw2", "2001:db8::5": "gw1",
                           "192.168.1.102": "gw1"}}
    two = _vrrp_plan.vrrp_instances(plan, ["gw1", "gw2"])
    assert [(item["address"], item["vrid"], item["priority"]) for item in two["gw1"]] == [
        ("192.168.1.100", 1, 200), ("192.168.1.101", 2, 190), ("192.168.1.102", 3, 200)]
    assert [item["priority"] for item in two["gw2"]] == [190, 200, 190]
    three = _vrrp_plan.ranked_nodes(["192.168.1.100", "192.168.1.101", "192.168.1.102"], ["gw1", "gw2", "gw3"])
    assert [order[0] for order in three.values()] == ["gw1", "gw2", "gw3"], "balanced first choices"
    assert all(sorted(order) == ["gw1", "gw2", "gw3"] for order in three.values())


def test_split_arp_detector():
    ok = [(0.00, "request", "rt"), (0.001, "reply", "aa"), (0.02, "request", "rt"), (0.3, "announce", "bb"),
          (0.32, "request", "rt"), (0.321, "reply", "bb")]
    assert failover_lab.arp_conflicts(ok) == []
    both = [(0.0, "request", "rt"), (0.001, "reply", "aa"), (0.002, "reply", "bb")]
    assert failover_lab.arp_conflicts(both)[0][1] == "two MACs answered one request"
    flip = [(0.0, "reply", "aa"), (0.1, "announce", "bb"), (0.2, "reply", "aa")]
    assert failover_lab.arp_conflicts(flip)[0][1] == "claims flip-flopped"
    line = ("1764626400.123456 02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: "
            "Request who-has 192.168.1.100 (ff:ff:ff:ff:ff:ff) tell 192.168.1.100, length 28")
    assert failover_lab.arp_claims(line) == [(1764626400.123456, "announce", "02:00:00:00:00:01")]
    asked = line.replace("tell 192.168.1.100", "tell 192.168.1.254").replace("02:00:00:00:00:01 >", "02:00:00:00:00:09 >")
    reply = ("1764626400.2 02:00:00:00:00:01 > 02:00:00:00:00:09, ethertype ARP (0x0806), length 42: "
             "Reply 192.168.1.100 is-at 02:00:00:00:00:01, length 28")
    assert [kind for _t, kind, _m in failover_lab.arp_claims(asked + "\n" + reply)] == ["request", "reply"]
    assert failover_lab.takeover_time([(5.0, "reply", "aa"), (5.3, "announce", "bb")], "aa", 5.1) == 0.2


def test_status_view_tables_show_vrrp_holders_split_and_policies():
    from ansible_collections.netkit.egress.plugins.plugin_utils import _status_view

    plan = {"groups": [{"name": "default", "namespace": "kube-system",
                        "floating_ips": ["192.168.1.100", "192.168.1.101"]}],
            "allocation": {"192.168.1.100": "gw1", "192.168.1.101": "gw2"},
            "policies": [{"name": "alice", "gateway_ref": {"name": "default", "namespace": "kube-system"},
                          "egress_ip": "192.168.1.100", "destinations": ["203.0.113.0/24"],
                          "excluded_destinations": [], "sources": ["10.10.1.10"],
                          "source_workloads": [{"name": "p1a"}]}]}
    vrrp = {"gw1": [{"address": "192.168.1.100", "state": "MASTER", "since": 0.5, "held": True},
                    {"address": "192.168.1.101", "state": "MASTER", "since": 1.5, "held": True}],
            "gw2": [{"address": "192.168.1.100", "state": "BACKUP", "since": 0.4, "held": False},
                    {"address": "192.168.1.101", "state": "MASTER", "since": 2.0, "held": True}]}
    view = _status_view.status_view(plan, {}, vrrp, {"alice": ["gw1", "gw2"]}, "vrrp")
    rows = {line.split()[0]: line.split() for line in view["lines"] if line.startswith("192.")}
    assert rows["192.168.1.100"][:3] == ["192.168.1.100", "gw1", "MASTER"]
    assert rows["192.168.1.100"][3] == "1970-01-01T00:00:00Z" and rows["192.168.1.100"][4] == "gw2:BACKUP"
    assert rows["192.168.1.101"][1:3] == ["gw1,gw2", "SPLIT"]
    assert any(line.split()[:4] == ["alice", "192.168.1.100", "gw1", "Applied"] for line in view["lines"])
    assert view["report"]["networkGatewayGroups"][0]["status"]["floatingIPs"]["192.168.1.100"] == "gw1"
    assert view["report"]["failover"] == "vrrp"


def test_reconcile_claims_a_held_quiet_address_and_quiets_one_the_host_lost(tmp_path):
    config = {"instances": {"nk_a": {"address": "192.168.1.100", "prefix_length": 24, "interface": "eth0"},
                            "nk_b": {"address": "192.168.1.101", "prefix_length": 24, "interface": "eth0"}},
              "state_file": str(tmp_path / "state.json"), "track_file": str(tmp_path / "track"),
              "conntrackd_config": None}
    handler = fence.Fence(config, run=lambda argv, **kwargs: None, clock=lambda: 5.0, monotonic=lambda: 1.0,
                          arp=FakeArp())
    handler.quiet = {"192.168.1.100"}
    handler.reconcile(held={"192.168.1.100"})
    assert list(handler.claims) == ["nk_a"], "a MASTER the program missed (a reload) is claimed"
    assert handler.quiet == {"192.168.1.100", "192.168.1.101"}, "an address the host does not have is quiet"
