# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the VRRP gateway's daemons start (pure): one start and one stop program (what boot runs where there
is no systemd, and what the module runs), and systemd units with the same commands in the foreground."""

from __future__ import annotations

from ansible_collections.netkit.egress.plugins.module_utils import _boot

HEADER = _boot.header("vrrp_gateway")


def keepalived_argv(paths, foreground=True):
    # -P: only the VRRP subsystem (no health checkers); -n: keepalived stays in the foreground, a
    # supervisor (systemd, or setsid from the start program) owns it; -l: log to stderr.
    return ["keepalived", "-P", "-n", "-l", "-f", paths.keepalived_conf, "-p", paths.keepalived_pid,
            "-r", paths.vrrp_pid]


def conntrackd_argv(paths):
    return ["conntrackd", "-C", paths.conntrackd_conf]


_RUNNING = """running() {
  # A live process of that name whose pid is in the file (a stale pid file or a zombie does not count).
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [ -r "/proc/$pid/stat" ] || return 1
  case "$(cut -d')' -f2 "/proc/$pid/stat" | cut -d' ' -f2)" in Z|X) return 1 ;; esac
  tr '\\0' ' ' < "/proc/$pid/cmdline" | grep -q "$2"
}
"""


def render_start(gateway, paths):
    run = paths.run_dir
    lines = [_RUNNING.rstrip("\n"),
             f"mkdir -p {run}",
             f"[ -s {paths.track_file} ] || echo 0 > {paths.track_file}"]
    if gateway.conntrack:
        lines += [f"if ! running {paths.conntrackd_pid} conntrackd; then",
                  f"  rm -f {paths.conntrackd_pid} {paths.run('conntrackd.lock')} {paths.run('conntrackd.sock')}",
                  f"  setsid {' '.join(conntrackd_argv(paths))} </dev/null >>{paths.run('conntrackd.out')} 2>&1 &",
                  f"  echo $! > {paths.conntrackd_pid}",
                  "  i=0; while [ ! -S " + paths.run("conntrackd.sock") + " ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done",
                  "fi"]
    lines += [f"if ! running {paths.keepalived_pid} keepalived; then",
              # A stale pid file with an unreaped zombie behind it makes a new keepalived exit at once.
              f"  rm -f {paths.keepalived_pid} {paths.vrrp_pid}",
              f"  setsid {' '.join(keepalived_argv(paths))} </dev/null >>{paths.run('keepalived.log')} 2>&1 &",
              "  i=0; while [ ! -s " + paths.vrrp_pid + " ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done",
              "fi"]
    return _boot.render_program("vrrp_gateway", "Starts what is not running: conntrackd (if configured), then "
                                "keepalived. Safe to run again.", lines)


def render_stop(paths):
    """Stops keepalived (SIGTERM: it sends priority 0, the backups take over at once, it removes its
    addresses) and then conntrackd, each by its pid file."""
    lines = [_RUNNING.rstrip("\n")]
    for pid_file, name in ((paths.keepalived_pid, "keepalived"), (paths.conntrackd_pid, "conntrackd")):
        lines += [f"if running {pid_file} {name}; then",
                  f"  pid=$(cat {pid_file}); kill -TERM $pid",
                  "  i=0; while [ -d /proc/$pid ] && running " + pid_file + f" {name} && [ $i -lt 50 ]; do "
                  "sleep 0.1; i=$((i+1)); done",
                  "fi",
                  f"rm -f {pid_file}"]
    lines.append(f"rm -f {paths.vrrp_pid}")
    return _boot.render_program("vrrp_gateway", "Stops keepalived, then conntrackd, each by its pid file.", lines,
                                stop_on_error=False)


def render_units(gateway, paths):
    """name -> text of the systemd units (only written where systemd runs)."""
    units = {}
    # The NAT datapath first: the track script fails a node without it.
    keepalived_after = f"network-online.target {_boot.NAT_POLICY_UNIT}"
    if gateway.conntrack:
        keepalived_after += f" {_boot.CONNTRACKD_UNIT}"
        units[_boot.CONNTRACKD_UNIT] = (
            HEADER + "[Unit]\nDescription=netkit.egress conntrack state sync (conntrackd FTFW)\n"
            "After=network-online.target\nWants=network-online.target\n\n"
            "[Service]\nType=simple\n"
            f"ExecStartPre=/bin/mkdir -p {paths.run_dir}\n"
            f"ExecStartPre=/bin/rm -f {paths.run('conntrackd.lock')}\n"
            f"ExecStart=/usr/sbin/{' '.join(conntrackd_argv(paths))}\nRestart=on-failure\n\n"
            "[Install]\nWantedBy=multi-user.target\n")
    units[_boot.KEEPALIVED_UNIT] = (
        HEADER + "[Unit]\nDescription=netkit.egress floating IPs (keepalived VRRP)\n"
        f"After={keepalived_after}\nWants=network-online.target\n\n"
        "[Service]\nType=simple\n"
        f"ExecStartPre=/bin/mkdir -p {paths.run_dir}\n"
        f"ExecStartPre=/bin/sh -c '[ -s {paths.track_file} ] || echo 0 > {paths.track_file}'\n"
        f"ExecStart=/usr/sbin/{' '.join(keepalived_argv(paths))}\n"
        "ExecReload=/bin/kill -HUP $MAINPID\nKillMode=mixed\nRestart=on-failure\n\n"
        "[Install]\nWantedBy=multi-user.target\n")
    return units
