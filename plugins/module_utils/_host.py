# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The only place that talks to the host: reads kernel state and applies changes.

Every command is an argv list (never a shell string) run with a C locale. Everything else in
module_utils is pure and never imports this file's side effects.
"""

from __future__ import annotations

import json
import os
import tempfile

from ansible_collections.netkit.egress.plugins.module_utils._net import InputError, parse_address

_LOCALE = {"LANGUAGE": "C", "LC_ALL": "C", "LANG": "C"}
_SBIN_DIRS = ["/usr/sbin", "/sbin", "/usr/local/sbin"]


def _address_key(address):
    """IPv6 texts in one canonical form (the kernel's and ours may differ in case or zero runs)."""
    if ":" not in address:
        return address
    try:
        return parse_address(address, "address")
    except InputError:
        return address


class HostError(Exception):
    """A command on the host failed; the message says which command and why."""


class Host:
    """Thin wrapper around AnsibleModule.run_command with the reads and applies we need."""

    def __init__(self, module):
        self.module = module
        self._bins = {}

    # ---- plumbing -------------------------------------------------------------------------
    def which(self, name):
        if name not in self._bins:
            self._bins[name] = self.module.get_bin_path(name, required=False, opt_dirs=_SBIN_DIRS)
        return self._bins[name]

    def has(self, name):
        return self.which(name) is not None

    def run(self, argv, data=None, check=True):
        binary = self.which(argv[0])
        if binary is None:
            raise HostError(f"{argv[0]}: command not found on the host")
        rc, out, err = self.module.run_command(
            [binary] + list(argv[1:]), data=data, binary_data=data is not None,
            environ_update=_LOCALE, check_rc=False)
        if check and rc != 0:
            raise HostError(f"{' '.join(argv)} failed (rc={rc}): {(err or out).strip()}")
        return rc, out, err

    def apply(self, tool, payload, target=(), test=False, undo=False):
        """Run one transaction's tool (see ``_transaction``): ``test`` asks the kernel to check the input
        only; ``undo`` marks a roll-back (``ip -batch`` then goes on past lines that fail harmlessly)."""
        if tool == "nft":
            self.run(["nft", "-c", "-f", "-"] if test else ["nft", "-f", "-"], data=payload)
        elif tool == "iptables-restore":
            family, variant = target
            self.iptables_restore(family, variant, payload, test=test)
        elif tool == "ipset":
            self.ipset_restore(payload)
        elif tool == "ip-batch":
            family = target[0] if target else None
            lines = payload.splitlines()
            if undo:
                problem = self.ip_undo(lines, family=family)
                if problem:
                    raise HostError(problem)
            else:
                self.ip_batch(lines, family=family)
        elif tool == "sysctl":
            self.sysctl_set(target[0], payload)
        elif tool == "write":
            path, mode = (tuple(target) + (0o644,))[:2]
            self.write_file(path, payload, mode)
        elif tool == "remove":
            self.remove_file(target[0])
        elif tool == "wg-set":
            self.wg_set(target[0], json.loads(payload))
        elif tool == "wireguard-link":
            self.add_wireguard_link(target[0], payload, fallback=target[1] if len(target) > 1 else "")
        else:
            raise HostError(f"unknown tool {tool!r}")

    # ---- nftables -------------------------------------------------------------------------
    def nft_json(self, *args):
        """Return the ``nftables`` list of ``nft -j list ARGS``, or None if the object is absent."""
        rc, out, err = self.run(["nft", "-j", "list"] + list(args), check=False)
        if rc != 0:
            if "No such file or directory" in err or "does not exist" in err:
                return None
            raise HostError(f"nft -j list {' '.join(args)} failed (rc={rc}): {err.strip()}")
        return json.loads(out).get("nftables", []) if out.strip() else []

    def nft_table_json(self, family, table):
        return self.nft_json("table", family, table)

    def nft_check(self, script):
        self.run(["nft", "-c", "-f", "-"], data=script)

    def nft_apply(self, script):
        """Apply a whole nft script as one kernel transaction (all or nothing)."""
        self.run(["nft", "-f", "-"], data=script)

    def nft_table_text(self, family, table):
        """``nft list table`` text (loadable again), or None when the table does not exist."""
        rc, out, err = self.run(["nft", "list", "table", family, table], check=False)
        if rc != 0:
            if "No such file or directory" in err or "does not exist" in err:
                return None
            raise HostError(f"nft list table {family} {table} failed (rc={rc}): {err.strip()}")
        return out

    # ---- iptables -------------------------------------------------------------------------
    @staticmethod
    def iptables_binary(family, variant, action):
        """``iptables-nft-save`` style name; variant is ``nft``, ``legacy`` or ``''`` (the default)."""
        base = "iptables" if family == "ipv4" else "ip6tables"
        middle = f"-{variant}" if variant else ""
        suffix = f"-{action}" if action else ""
        return f"{base}{middle}{suffix}"

    def iptables_save(self, family, variant, table=None):
        argv = [self.iptables_binary(family, variant, "save")]
        if table:
            argv += ["-t", table]
        return self.run(argv)[1]

    def iptables_restore(self, family, variant, text, test=False):
        """``iptables-restore --noflush``: each table's COMMIT is atomic, other chains untouched."""
        argv = [self.iptables_binary(family, variant, "restore"), "--noflush", "--wait"]
        if test:
            argv.append("--test")
        self.run(argv, data=text)

    @staticmethod
    def legacy_tables_loaded(family):
        """Whether this network namespace has any legacy (x_tables) iptables table: when it has none,
        ``iptables-legacy-save`` would print nothing, and reading the /proc file saves a process."""
        path = "/proc/net/ip_tables_names" if family == "ipv4" else "/proc/net/ip6_tables_names"
        try:
            with open(path) as handle:
                return bool(handle.read().strip())
        except FileNotFoundError:
            return False
        except OSError:
            return True

    def iptables_version(self, variant=""):
        rc, out, err = self.run([self.iptables_binary("ipv4", variant, None), "--version"], check=False)
        return (out or err).strip() if rc == 0 else None

    # ---- ipset ----------------------------------------------------------------------------
    def ipset_save(self):
        return self.run(["ipset", "save"])[1]

    def ipset_restore(self, text):
        """``ipset -exist restore``: creating an existing set is a no-op, so one script fits boot and runs."""
        self.run(["ipset", "-exist", "restore"], data=text)

    # ---- iproute2 -------------------------------------------------------------------------
    def ip_json(self, *args, family=None):
        argv = ["ip", "-j"]
        if family == "ipv4":
            argv.append("-4")
        elif family == "ipv6":
            argv.append("-6")
        rc, out, err = self.run(argv + list(args), check=False)
        if rc != 0:
            raise HostError(f"{' '.join(argv + list(args))} failed (rc={rc}): {err.strip()}")
        return json.loads(out) if out.strip() else []

    def ip(self, *args, family=None, check=True, data=None):
        argv = ["ip"]
        if family == "ipv4":
            argv.append("-4")
        elif family == "ipv6":
            argv.append("-6")
        return self.run(argv + list(args), check=check, data=data)

    def ip_batch(self, commands, family=None):
        """Run several ``ip`` commands in one process (``ip -batch -``); it stops at the first failing
        line, the lines before it stay applied (see ``ip_undo``)."""
        if commands:
            self.ip("-batch", "-", family=family, data="".join(line + "\n" for line in commands))

    def ip_undo(self, commands, family=None):
        """Best-effort undo of an ``ip_batch`` that failed: ``ip -force -batch`` goes on after a failing
        line, because the undo of a line that never ran fails harmlessly. Returns the error text or ''."""
        if not commands:
            return ""
        rc, out, err = self.ip("-force", "-batch", "-", family=family, check=False,
                               data="".join(line + "\n" for line in commands))
        if rc == 0:
            return ""
        # Deleting what the failed batch never added, or adding back what it never removed, is fine.
        benign = ("No such process", "No such file or directory", "File exists",
                  "Cannot assign requested address", "Address not found", "Command failed")
        return "; ".join(line.strip() for line in (err or out).splitlines()
                         if line.strip() and not any(word in line for word in benign))

    def route_get(self, address, family):
        """The kernel's answer to ``ip route get ADDRESS``: a dict with ``dev`` (and ``gateway``)."""
        rc, out, err = self.run(["ip", "-j", "-6" if family == "ipv6" else "-4", "route", "get", address],
                                check=False)
        if rc != 0:
            return None
        routes = json.loads(out) if out.strip() else []
        return routes[0] if routes else None

    def route_get_many(self, addresses):
        """``ip route get`` of many addresses in one ``ip -j -force -batch -`` process (one process instead
        of one per address: 10,000 lookups take half a second, not minutes). Returns {address: answer};
        an address without a route is missing (``-force`` goes on after its failing line)."""
        if not addresses:
            return {}
        # The batch goes through a file: run_command writes all of stdin before it reads stdout, and with
        # megabytes of answers both pipes would fill up and block each other.
        fd, batch_path = tempfile.mkstemp(prefix=".netkit-route-get-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write("".join(f"route get {address}\n" for address in addresses))
            _rc, out, _err = self.run(["ip", "-j", "-force", "-batch", batch_path], check=False)
        finally:
            os.unlink(batch_path)
        # One JSON array per answered line: parsed as one document (10,000 json.loads calls cost 0.1 s).
        lines = [line for line in out.splitlines() if line.strip()]
        try:
            batches = json.loads("[" + ",".join(lines) + "]")
        except ValueError:
            batches = []
            for line in lines:
                try:
                    batches.append(json.loads(line))
                except ValueError:
                    continue
        answers = {}
        for routes in batches:
            for route in routes if isinstance(routes, list) else []:
                if isinstance(route, dict) and route.get("dst"):
                    answers[_address_key(route["dst"])] = route
        return {address: answers[_address_key(address)] for address in addresses if _address_key(address) in answers}

    def routing_state(self, family):
        """(rules, routes of every table) of one family, as ``ip -j rule show`` and ``ip -j route show table
        all`` print them: two small reads that let ``_egress_gateway.route_lookup`` answer most route lookups itself."""
        return self.ip_json("rule", "show", family=family), self.ip_json("route", "show", "table", "all", family=family)

    def link_names(self):
        return [link["ifname"] for link in self.ip_json("link", "show")]

    def route_table(self, table, family):
        """``ip -j route show table TABLE`` of one family; a table that does not exist (yet) is empty."""
        try:
            return self.ip_json("route", "show", "table", str(table), family=family)
        except HostError as exc:
            if "does not exist" in str(exc):
                return []
            raise

    def link_detail(self, interface):
        """``ip -j -d link show dev IF`` (a list with one link), or None when there is no such link."""
        rc, out, _err = self.run(["ip", "-j", "-d", "link", "show", "dev", interface], check=False)
        if rc != 0:
            return None
        return json.loads(out) if out.strip() else None

    # ---- WireGuard ------------------------------------------------------------------------
    def wg_dump(self, interface):
        """``wg show IF dump`` text (its first line holds the private key: parse it with _wireguard.read,
        which drops it), or None when the interface is not a WireGuard device."""
        rc, out, _err = self.run(["wg", "show", interface, "dump"], check=False)
        return out if rc == 0 else None

    def wg_genkey(self):
        return self.run(["wg", "genkey"])[1].strip()

    def wg_pubkey(self, private_key):
        return self.run(["wg", "pubkey"], data=private_key.strip() + "\n")[1].strip()

    def wg_set(self, interface, args):
        if args:
            self.run(["wg", "set", interface] + list(args))

    @staticmethod
    def kernel_has_wireguard():
        """Whether ``ip link add type wireguard`` can work: the module is loaded (or built in), or modinfo
        finds it (``ip link add`` loads it on demand)."""
        if os.path.isdir("/sys/module/wireguard"):
            return True
        for directory in ("/lib/modules", "/usr/lib/modules"):
            release = os.uname().release
            path = os.path.join(directory, release)
            if os.path.isdir(path):
                for _root, _dirs, files in os.walk(path):
                    if any(name.startswith("wireguard.ko") for name in files):
                        return True
        return False

    def add_wireguard_link(self, interface, implementation, fallback=""):
        """Create a WireGuard interface: ``kernel`` (``ip link add IF type wireguard``) or ``wireguard-go``; when
        the kernel refuses and ``fallback`` is ``wireguard-go``, userspace it is."""
        if implementation == "kernel":
            rc, out, err = self.run(["ip", "link", "add", interface, "type", "wireguard"], check=False)
            if rc == 0:
                return
            if fallback != "wireguard-go":
                raise HostError(f"ip link add {interface} type wireguard failed (rc={rc}): {(err or out).strip()}")
        self.start_wireguard_go(interface)

    def start_wireguard_go(self, interface, timeout=5.0):
        """Start userspace WireGuard for ``interface`` (it daemonizes) and wait for its control socket."""
        import time

        self.run(["wireguard-go", interface])
        socket_path = f"/var/run/wireguard/{interface}.sock"
        deadline = time.monotonic() + timeout
        while not os.path.exists(socket_path):
            if time.monotonic() > deadline:
                raise HostError(f"wireguard-go {interface}: no control socket {socket_path} after {timeout} s")
            time.sleep(0.02)

    # ---- sysctl ---------------------------------------------------------------------------
    @staticmethod
    def _sysctl_path(name):
        return "/proc/sys/" + name.replace(".", "/")

    def sysctl_get(self, name):
        try:
            with open(self._sysctl_path(name)) as handle:
                return handle.read().strip()
        except OSError:
            return None

    def sysctl_set(self, name, value):
        try:
            with open(self._sysctl_path(name), "w") as handle:
                handle.write(str(value))
        except OSError as exc:
            raise HostError(f"sysctl {name}={value} failed: {exc}") from exc

    # ---- files ----------------------------------------------------------------------------
    @staticmethod
    def read_file(path):
        try:
            with open(path) as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def write_file(self, path, content, mode=0o644):
        """Write ``path`` atomically; a file system error is a HostError (so a transaction rolls back)."""
        directory = os.path.dirname(path)
        try:
            os.makedirs(directory, exist_ok=True)
            fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".netkit-")
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            os.chmod(tmp_path, mode)
        except OSError as exc:
            raise HostError(f"writing {path} failed: {exc}") from exc
        # atomic_move gives a new file the umask's default mode (0644): a secret (a private key) must never
        # be readable by others, not even for a moment, so the umask is tightened around the move.
        previous_umask = os.umask(0o077)
        if mode & 0o077:
            os.umask(previous_umask)
        try:
            self.module.atomic_move(tmp_path, path)
        finally:
            os.umask(previous_umask)
        os.chmod(path, mode)

    @staticmethod
    def remove_file(path):
        try:
            os.unlink(path)
            return True
        except FileNotFoundError:
            return False

    @staticmethod
    def file_mode(path):
        try:
            return os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            return None

    # ---- daemons --------------------------------------------------------------------------
    @staticmethod
    def systemd_running():
        return os.path.isdir("/run/systemd/system")

    def boot_unit(self, name, enabled):
        """After a unit file was written (``enabled``) or removed: reload systemd and enable the unit at boot,
        or forget it (its state stays applied: the unit only restores it at boot)."""
        if not enabled:
            self.run(["systemctl", "disable", name], check=False)
        self.run(["systemctl", "daemon-reload"])
        if enabled:
            self.run(["systemctl", "enable", name])

    @staticmethod
    def pid_of(pid_file, name):
        """The pid in ``pid_file`` when that process lives and its command line names ``name`` (a stale pid
        file, a reused pid or a zombie is None)."""
        try:
            with open(pid_file) as handle:
                pid = int(handle.read().strip())
            with open(f"/proc/{pid}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except (OSError, ValueError, IndexError):
            return None
        return pid if state not in ("Z", "X") and name in command else None

    def process_running(self, pid_file, name):
        return self.pid_of(pid_file, name) is not None

    def signal_pid_file(self, pid_file, name, signal_name):
        import signal

        pid = self.pid_of(pid_file, name)
        if pid is None:
            raise HostError(f"{name} is not running (pid file {pid_file})")
        os.kill(pid, getattr(signal, f"SIG{signal_name}"))

    def stop_pid_file(self, pid_file, name, timeout=5.0):
        """SIGTERM the process of ``pid_file`` and wait until it is gone; remove the pid file."""
        import signal
        import time

        pid = self.pid_of(pid_file, name)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.pid_of(pid_file, name) == pid and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.pid_of(pid_file, name) == pid:
                raise HostError(f"{name} (pid {pid}) did not stop within {timeout} s")
        self.remove_file(pid_file)

    # ---- raw frames -----------------------------------------------------------------------
    @staticmethod
    def send_frames(interface, frames):
        """Send complete Ethernet frames out of ``interface`` (AF_PACKET, needs CAP_NET_RAW)."""
        import socket

        try:
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw_socket:
                raw_socket.bind((interface, 0))
                for frame in frames:
                    raw_socket.send(frame)
        except OSError as exc:
            raise HostError(f"sending {len(frames)} frame(s) on {interface} failed: {exc}") from exc


LOCK_DIR = "/run/lock"


def namespace_lock_path(prefix="netkit-egress"):
    """A lock file per network namespace: two runs against one host serialize, while hosts that are
    namespaces of one machine (a lab) keep running in parallel."""
    try:
        namespace_id = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        namespace_id = 0
    directory = LOCK_DIR if os.path.isdir(LOCK_DIR) else tempfile.gettempdir()
    return os.path.join(directory, f"{prefix}-{namespace_id}.lock")


class HostLock:
    """``with HostLock(): ...`` holds an exclusive flock for this host's network namespace."""

    def __init__(self, path=None, timeout=120):
        self.path = path or namespace_lock_path()
        self.timeout = timeout
        self._handle = None

    def __enter__(self):
        import fcntl
        import time

        self._handle = open(self.path, "a")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._handle.close()
                    raise HostError(f"another netkit.egress run holds {self.path} for more than {self.timeout} s")
                time.sleep(0.05)

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
