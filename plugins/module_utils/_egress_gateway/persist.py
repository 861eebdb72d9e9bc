# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Persistence files of the egress gateway (pure rendering): the ruleset files, a sysctl.d file and a
oneshot systemd unit whose ExecStart= lines are exactly the commands that restore the state at boot."""

from __future__ import annotations

import os

from ansible_collections.netkit.egress.plugins.module_utils import _boot

NFT_FILE = "egress_gateway.nft"
IPTABLES_FILES = {"ipv4": "egress_gateway.rules.v4", "ipv6": "egress_gateway.rules.v6"}
IPSET_FILE = "egress_gateway.ipset"
SYSCTL_FILE = "90-netkit-egress-gateway.conf"
UNIT_FILE = "netkit-egress-gateway.service"
HEADER = _boot.header("egress_gateway")
# Lists every file a persisting run wrote, so that a later run with other directories still finds and
# removes them.
MANIFEST_FILE = "egress_gateway.files"
OWN_FILE_NAMES = frozenset([NFT_FILE, IPSET_FILE, SYSCTL_FILE, UNIT_FILE, *IPTABLES_FILES.values()])


def all_paths(persist_dir, sysctl_dir, unit_dir):
    """Every file the module may own, so that stale ones can be removed."""
    return ([os.path.join(persist_dir, NFT_FILE)]
            + [os.path.join(persist_dir, name) for name in IPTABLES_FILES.values()]
            + [os.path.join(persist_dir, IPSET_FILE)]
            + [os.path.join(sysctl_dir, SYSCTL_FILE), os.path.join(unit_dir, UNIT_FILE)])


def render_manifest(paths):
    return HEADER + "".join(path + "\n" for path in sorted(paths))


def parse_manifest(text):
    """Paths recorded by an earlier run; only absolute paths of our own file names are trusted."""
    paths = []
    for line in (text or "").splitlines():
        line = line.strip()
        if os.path.isabs(line) and os.path.basename(line) in OWN_FILE_NAMES and ".." not in line.split("/"):
            paths.append(line)
    return paths


def render_sysctl(sysctls):
    return HEADER + "".join(f"{name} = {value}\n" for name, value in sorted(sysctls.items()))


def render_unit(exec_starts):
    # Before the network comes up: the firewall is in place before the first packet is forwarded.
    return _boot.render_unit("egress_gateway", "netkit.egress egress gateway (forwarding sysctls and firewall rules)",
                             exec_starts, wants=("network-pre.target",), before=("network-pre.target",),
                             after=("local-fs.target",), default_dependencies=False)


def render_files(backend, rules, sysctls, binaries, persist_dir, sysctl_dir, unit_dir):
    """{path: content} for the persisted state.

    rules: the nft script (nftables) or {family: iptables-restore text, 'ipset': ipset restore text}
    (iptables; the sets are restored before the rules that name them);
    binaries: absolute paths of ``sysctl``, ``nft``, ``ipset`` and/or ``iptables-restore``/``ip6tables-restore``
    (keys ``sysctl``, ``nft``, ``ipset``, ``ipv4``, ``ipv6``).
    """
    files, exec_starts = {}, []
    if sysctls:
        sysctl_path = os.path.join(sysctl_dir, SYSCTL_FILE)
        files[sysctl_path] = render_sysctl(sysctls)
        exec_starts.append([binaries["sysctl"], "-p", sysctl_path])
    if backend == "nftables":
        path = os.path.join(persist_dir, NFT_FILE)
        files[path] = rules
        exec_starts.append([binaries["nft"], "-f", path])
    else:
        if rules.get("ipset"):
            path = os.path.join(persist_dir, IPSET_FILE)
            files[path] = rules["ipset"]
            exec_starts.append([binaries["ipset"], "-exist", "-file", path, "restore"])
        for family, text in rules.items():
            if family == "ipset":
                continue
            path = os.path.join(persist_dir, IPTABLES_FILES[family])
            files[path] = text
            exec_starts.append([binaries[family], "--noflush", path])
    files[os.path.join(unit_dir, UNIT_FILE)] = render_unit(exec_starts)
    return files
