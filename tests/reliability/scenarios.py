# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The configurations every reliability test applies, and the hand-made drifts that undo one piece.

Policies are held in the order of their names: ``pol-6`` is p0, ``pol-a`` is p1.

Each scenario: (name, host, module, args, drifts); a drift is (what, shell command run in the host)."""

SEGMENTED = [{"name": "net-a", "cidr": ["10.100.0.0/25", "fd00:100::/65"],
              "ranges": ["192.168.50.0/25", "2001:db8:50::/65"]},
             {"name": "net-b", "cidr": ["10.100.0.128/25", "fd00:100::8000:0:0:0/65"],
              "ranges": ["192.168.50.128/25", "2001:db8:50:0:8000::/65"]}]


def egress_gateway_args(backend="nftables", variant="auto", **extra):
    args = {"network_interface": "nm0", "ranges": [], "networks": SEGMENTED, "nat": True,
            "backend": backend, "iptables_variant": variant, "persist": False}
    args.update(extra)
    return args


ROUTES_ARGS = {"routes": [{"destination": "198.51.100.0/24", "via": "10.100.0.2"},
                          {"destination": "198.18.0.0/16", "via": "10.100.0.2"},
                          {"destination": "2001:db8:99::/64", "via": "fd00:100::2"}],
               "state": "exact"}
FLOATING_ARGS = {"addresses": ["192.168.1.100", "192.168.1.101", "2001:db8:1::100"], "state": "exact",
                 "announce": False}
NAT_GATEWAY_ARGS = {"role": "gateway", "state": "overridden",
                    "config": [{"name": "pol-a", "egress_ip": "192.168.1.100", "sources": ["10.10.1.0/24", "10.10.9.5"],
                                "destinations": ["203.0.113.0/24", "198.51.100.0/24"]},
                               {"name": "pol-6", "egress_ip": "2001:db8:1::100", "sources": ["2001:db8:10::/64"],
                                "destinations": ["2001:db8:203::/64"]}],
                    "return_routes": [{"destination": "10.10.1.0/24", "via": "192.168.1.1"},
                                      {"destination": "2001:db8:10::/64", "via": "2001:db8:1::1"}]}
NAT_SOURCE_ARGS = {"role": "source", "state": "overridden",
                   "config": [{"name": "pol-a", "egress_ip": "192.168.1.100", "sources": ["10.10.1.0/24"],
                               "destinations": ["203.0.113.0/24"], "excluded_destinations": ["203.0.113.20/32"]},
                              {"name": "pol-6", "egress_ip": "2001:db8:1::100", "sources": ["2001:db8:10::/64"],
                               "destinations": ["2001:db8:203::/64"]}]}

NFT_RULE_DELETE = ("nft -a list chain inet {table} {chain} | awk '/comment/ {{print $NF; exit}}' | "
                   "xargs -I{{}} nft delete rule inet {table} {chain} handle {{}}")

SCENARIOS = [
    ("egress_gateway nftables", "gw", "egress_gateway", egress_gateway_args(), [
        ("rule", NFT_RULE_DELETE.format(table="netkit_egress", chain="forward")),
        ("set element", "nft delete element inet netkit_egress netkit_p0_dst4_l25 '{ 192.168.50.0 }'"),
        ("sysctl", "sysctl -qw net.ipv4.ip_forward=0"),
    ]),
    ("egress_gateway iptables-nft", "gw", "egress_gateway", egress_gateway_args("iptables", "nft"), [
        ("rule", "iptables-nft -D NETKIT-EGRESS-FWD 2"),
        ("jump rule", "ip6tables-nft -t nat -D POSTROUTING -j NETKIT-EGRESS-NAT"),
        ("sysctl", "sysctl -qw net.ipv6.conf.all.forwarding=0"),
    ]),
    ("egress_gateway iptables-legacy", "gw", "egress_gateway", egress_gateway_args("iptables", "legacy"), [
        ("rule", "iptables-legacy -t nat -D NETKIT-EGRESS-NAT 1"),
        ("sysctl", "sysctl -qw net.ipv4.ip_forward=0"),
    ]),
    ("egress_routes", "gw", "egress_routes", ROUTES_ARGS, [
        ("route", "ip route del 198.18.0.0/16 proto 201"),
        ("route (IPv6)", "ip -6 route del 2001:db8:99::/64 proto 201"),
    ]),
    ("floating_ip", "gw", "floating_ip", FLOATING_ARGS, [
        ("floating IP", "ip addr del 192.168.1.101/24 dev eth0"),
        ("floating IP (IPv6)", "ip addr del 2001:db8:1::100/64 dev eth0"),
    ]),
    ("nat_policy gateway", "gw", "nat_policy", NAT_GATEWAY_ARGS, [
        ("set element", "nft delete element inet netkit_egress_nat p1_src '{ 10.10.9.5 }'"),
        ("rule", NFT_RULE_DELETE.format(table="netkit_egress_nat", chain="postrouting")),
        ("route", "ip route del 10.10.1.0/24 proto 201"),
        ("sysctl", "sysctl -qw net.ipv6.conf.all.forwarding=0"),
    ]),
    ("nat_policy source", "nb", "nat_policy", NAT_SOURCE_ARGS, [
        ("ip rule", "ip rule del priority 21000"),
        ("route", "ip -6 route flush table 21001"),
        ("set element", "nft delete element inet netkit_egress_nat p1_exc '{ 203.0.113.20 }'"),
        ("sysctl", "sysctl -qw net.ipv4.ip_forward=0"),
    ]),
]
