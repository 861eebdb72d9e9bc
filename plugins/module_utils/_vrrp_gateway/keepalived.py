# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""keepalived.conf of a VRRP gateway (pure): VRRPv3, unicast peers, one instance per floating IP."""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils import _boot

HEADER = _boot.header("vrrp_gateway")
FENCE_TRACK = "nk_fence"
UPLINK_SCRIPT = "nk_uplink"


def _advert(value):
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "1"


def render(gateway, paths):
    out = [HEADER, "global_defs {\n",
           "  vrrp_version 3\n",
           "  enable_script_security\n",
           "  script_user root\n",
           # Gratuitous ARP is what moves the neighbours: several, at once, and again while master.
           f"  vrrp_garp_master_repeat {gateway.garp_repeat}\n",
           "  vrrp_garp_master_delay 1\n",
           "  vrrp_garp_lower_prio_repeat 1\n",
           f"  vrrp_notify_fifo {paths.fifo}\n",
           # A reload restarts the notify program: tell the new one every instance's state.
           "  fifo_write_vrrp_states_on_reload\n",
           f"  vrrp_notify_fifo_script \"{paths.notify_program} {paths.notify_config}\"\n",
           "}\n\n",
           f"vrrp_track_file {FENCE_TRACK} {{\n  file {paths.track_file}\n}}\n\n",
           f"vrrp_script {UPLINK_SCRIPT} {{\n  script \"{paths.track_program}\"\n  interval 1\n"
           "  timeout 2\n  fall 2\n  rise 2\n}\n"]
    for item in gateway.instances:
        out += ["\n", f"vrrp_instance {item.name} {{\n",
                "  state BACKUP\n",
                f"  interface {item.interface}\n",
                f"  virtual_router_id {item.vrid}\n",
                f"  priority {item.priority}\n",
                f"  advert_int {_advert(gateway.advert_interval)}\n",
                f"  unicast_src_ip {gateway.source_address}\n",
                "  unicast_peer {\n"]
        out += [f"    {peer}\n" for peer in gateway.peers]
        out += ["  }\n",
                f"  virtual_ipaddress {{\n    {item.address}/{item.prefix_length} dev {item.interface} "
                f"label {_label(item.interface)}\n  }}\n"]
        if gateway.garp_refresh:
            out.append(f"  garp_master_refresh {gateway.garp_refresh}\n")
        interfaces = [name for name in gateway.track_interfaces if name != item.interface]
        if interfaces:
            out.append("  track_interface {\n" + "".join(f"    {name}\n" for name in interfaces) + "  }\n")
        out.append(f"  track_script {{\n    {UPLINK_SCRIPT}\n  }}\n")
        # weight 0: any value other than 0 in the file puts the instance in FAULT (the fence's lever).
        out.append(f"  track_file {{\n    {FENCE_TRACK} weight 0\n  }}\n")
        out.append("}\n")
    return "".join(out)


def _label(interface):
    """The ``<ifname>:nk`` label floating_ip gives its addresses, so ``ip addr`` shows them alike."""
    return interface[:12] + ":nk"


def render_track_script(gateway):
    """The uplink and SNAT path check: a default route, and (when set) the NAT table that SNATs to the floating
    IPs and the return routes to the workloads. A link that went down took its routes with it; the host's
    network configuration brings the default route back, but only a run (or boot) brings the return routes
    back, and a holder without them would swallow every reply."""
    lines = ["#!/bin/sh", HEADER.strip(),
             "ip -4 route show default | grep -q . || exit 1"]
    if gateway.track_nft_table:
        lines.append(f"nft list table {gateway.track_nft_table} >/dev/null 2>&1 || exit 1")
    if gateway.track_return_routes:
        lines.append(f'[ "$(ip -4 route show table main proto {gateway.route_protocol} | wc -l)" '
                     f'-ge {gateway.track_return_routes} ] || exit 1')
    lines.append("exit 0")
    return "\n".join(lines) + "\n"
