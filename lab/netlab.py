"""Build throw-away network topologies out of Linux network namespaces, and talk TCP through them.

Used by the lab demo and by the integration tests. Everything it creates lives inside namespaces
whose names start with the lab's prefix; ``Lab.destroy()`` removes them (deleting a namespace
removes its veth ends, addresses, routes, rules and firewall state with it). Nothing here touches the
root namespace except creating and deleting those namespaces.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WHOAMI_SERVER = os.path.join(HERE, "whoami_server.py")
ETC_MOUNT_TARGET = "/etc/netkit-egress"
# Where the netkit.egress.netns connection keeps each namespace host's own directories (see its docs).
NETNS_ETC_DIR = "/etc/netns"
PRIVATE_RUN_ROOT = "/run/netkit-egress-netns"


class LabError(RuntimeError):
    pass


def run(argv, data=None, check=True, timeout=60):
    proc = subprocess.run(argv, input=data, capture_output=True, text=True, timeout=timeout, check=False,
                          env=dict(os.environ, LANG="C", LC_ALL="C"))
    if check and proc.returncode != 0:
        raise LabError(f"{shlex.join(argv)} failed (rc={proc.returncode}): {proc.stderr.strip()}")
    return proc


def lab_prefix(tag):
    """A per-process namespace prefix ``tag<pid>`` (8 characters at most), behind ``$NETKIT_LAB_PREFIX`` when
    set, so that people sharing a machine can tell (and clean up) their own namespaces."""
    base = os.environ.get("NETKIT_LAB_PREFIX", "") + tag
    digits = 8 - len(base)
    if digits < 2:
        raise ValueError(f"NETKIT_LAB_PREFIX {base!r} leaves no room for the pid in 8 characters")
    return f"{base}{os.getpid() % 10 ** digits}"


def existing_namespaces():
    out = run(["ip", "-j", "netns", "list"], check=False).stdout.strip()
    return [entry["name"] for entry in json.loads(out)] if out else []


class Lab:
    """A set of namespaces sharing one name prefix. Hosts are addressed by short names."""

    def __init__(self, prefix):
        if not prefix or len(prefix) > 8:
            raise ValueError("prefix must be 1-8 characters (interface names are limited to 15)")
        self.prefix = prefix
        self.hosts = []
        self._servers = []
        self._link_count = 0

    # ---- naming -------------------------------------------------------------------------
    def ns(self, host):
        return f"{self.prefix}-{host}"

    # ---- lifecycle ----------------------------------------------------------------------
    def add_host(self, host, forwarding=False):
        name = self.ns(host)
        if name in existing_namespaces():
            run(["ip", "netns", "del", name])
        run(["ip", "netns", "add", name])
        # `ip netns exec` bind-mounts /etc/netns/NAME/* over /etc/*: this gives every namespace host
        # its own /etc/netkit-egress (state and persistence files), as separate machines would have.
        os.makedirs(ETC_MOUNT_TARGET, exist_ok=True)
        os.makedirs(os.path.join("/etc/netns", name, "netkit-egress"), exist_ok=True)
        self.hosts.append(host)
        self.sh(host, "ip link set lo up")
        # Fresh namespaces start with forwarding off; routers in the lab turn it on explicitly
        # so that tests can tell what the modules themselves enable.
        if forwarding:
            self.sysctl(host, "net.ipv4.ip_forward", 1)
            self.sysctl(host, "net.ipv6.conf.all.forwarding", 1)
        # IPv6 duplicate address detection would delay addresses by seconds.
        self.sysctl(host, "net.ipv6.conf.all.accept_dad", 0)
        self.sysctl(host, "net.ipv6.conf.default.accept_dad", 0)
        return name

    def destroy(self):
        for proc in self._servers:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
        self._servers = []
        for name in existing_namespaces():
            if name.startswith(self.prefix + "-"):
                # Kill whatever still runs in it, then delete it.
                pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
                for pid in pids:
                    run(["kill", "-9", pid], check=False)
                run(["ip", "netns", "del", name], check=False)
        for root in (NETNS_ETC_DIR, PRIVATE_RUN_ROOT):
            for name in os.listdir(root) if os.path.isdir(root) else []:
                if name.startswith(self.prefix + "-"):
                    shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        self.hosts = []

    def destroy_host(self, host):
        """Remove one host (as if the machine died): its namespace and everything in it."""
        name = self.ns(host)
        for pid in run(["ip", "netns", "pids", name], check=False).stdout.split():
            run(["kill", "-9", pid], check=False)
        run(["ip", "netns", "del", name], check=False)
        for root in (NETNS_ETC_DIR, PRIVATE_RUN_ROOT):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        if host in self.hosts:
            self.hosts.remove(host)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()

    # ---- commands -----------------------------------------------------------------------
    def exec(self, host, argv, data=None, check=True, timeout=60):
        return run(["ip", "netns", "exec", self.ns(host)] + list(argv), data=data, check=check,
                   timeout=timeout)

    def host_exec(self, host, argv, data=None, check=True, timeout=60):
        """Like ``exec``, but with the host's private directories mounted as the netkit.egress.netns
        connection mounts them (its own /run, /etc/netkit-egress, /etc/wireguard, ...): what a task on that host sees."""
        from ansible_collections.netkit.egress.plugins.connection.netns import DEFAULT_PRIVATE_DIRS, private_mounts

        script = private_mounts(self.ns(host), DEFAULT_PRIVATE_DIRS) + ' && exec "$@"'
        return run(["ip", "netns", "exec", self.ns(host), "/bin/sh", "-c", script, "netkit-netns"] + list(argv),
                   data=data, check=check, timeout=timeout)

    def sh(self, host, command, check=True, timeout=60):
        return self.exec(host, ["/bin/sh", "-c", command], check=check, timeout=timeout)

    def sysctl(self, host, name, value):
        self.sh(host, f"sysctl -qw {shlex.quote(name)}={shlex.quote(str(value))}")

    def sysctl_get(self, host, name):
        return self.sh(host, f"sysctl -n {shlex.quote(name)}").stdout.strip()

    # ---- links --------------------------------------------------------------------------
    def link(self, host_a, ifname_a, host_b, ifname_b):
        """A veth pair between two hosts, both ends up."""
        tmp_a = f"{self.prefix}v{self._link_count}a"
        tmp_b = f"{self.prefix}v{self._link_count}b"
        self._link_count += 1
        run(["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b])
        run(["ip", "link", "set", tmp_a, "netns", self.ns(host_a)])
        run(["ip", "link", "set", tmp_b, "netns", self.ns(host_b)])
        self.sh(host_a, f"ip link set {tmp_a} name {ifname_a} && ip link set {ifname_a} up")
        self.sh(host_b, f"ip link set {tmp_b} name {ifname_b} && ip link set {ifname_b} up")

    def bridge(self, host, bridge_name):
        """A bridge inside ``host`` (a namespace acting as a switch)."""
        self.sh(host, f"ip link add {bridge_name} type bridge && ip link set {bridge_name} up")

    def attach(self, switch_host, bridge_name, host, ifname):
        """Connect ``host`` with interface ``ifname`` to ``bridge_name`` in ``switch_host``."""
        port = f"p{self._link_count}"
        self.link(switch_host, port, host, ifname)
        self.sh(switch_host, f"ip link set {port} master {bridge_name}")

    def addr(self, host, ifname, cidr):
        family = "-6" if ":" in cidr else "-4"
        self.sh(host, f"ip {family} addr add {cidr} dev {ifname} nodad" if ":" in cidr
                else f"ip -4 addr add {cidr} dev {ifname}")

    def route(self, host, destination, via=None, dev=None):
        family = "-6" if ":" in destination or (via and ":" in via) else "-4"
        command = f"ip {family} route replace {destination}"
        if via:
            command += f" via {via}"
        if dev:
            command += f" dev {dev}"
        self.sh(host, command)

    # ---- state snapshots ----------------------------------------------------------------
    def snapshot(self, host):
        """Everything a module could change, as text, to prove that nothing changed."""
        parts = {}
        for label, command in (
                ("nft", "nft list ruleset"),
                ("iptables-nft", "iptables-nft-save 2>/dev/null | grep -v '^#'"),
                ("ip6tables-nft", "ip6tables-nft-save 2>/dev/null | grep -v '^#'"),
                ("iptables-legacy", "iptables-legacy-save 2>/dev/null | grep -v '^#'"),
                ("ip6tables-legacy", "ip6tables-legacy-save 2>/dev/null | grep -v '^#'"),
                ("addr", "ip -j addr show"),
                ("route4", "ip -4 -j route show table all"),
                ("route6", "ip -6 -j route show table all"),
                ("rule4", "ip -4 -j rule show"),
                ("rule6", "ip -6 -j rule show"),
                ("sysctl", "sysctl net.ipv4.ip_forward net.ipv6.conf.all.forwarding "
                           "net.ipv4.conf.all.rp_filter net.ipv4.conf.all.src_valid_mark")):
            parts[label] = self.sh(host, command, check=False).stdout
        return parts

    # ---- traffic ------------------------------------------------------------------------
    def start_whoami(self, host, port=8080, bind="::", lifetime=900):
        """A TCP server in ``host`` that answers every connection with the peer address it sees."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(host), sys.executable, WHOAMI_SERVER,
             "--port", str(port), "--bind", bind, "--lifetime", str(lifetime)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Wait until it listens (bounded).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            out = self.sh(host, f"ss -Hltn 'sport = :{port}'", check=False).stdout
            if out.strip():
                break
            time.sleep(0.05)
        else:
            proc.kill()
            raise LabError(f"whoami server in {host} did not start: {proc.stderr.read()}")
        self._servers.append(proc)
        return proc

    def whoami(self, client, server_address, port=8080, timeout=3.0):
        """Connect from ``client`` to the whoami server; return the source address the server saw,
        or None when the connection fails (refused, dropped, no route, timeout)."""
        code = (
            "import socket,sys\n"
            "try:\n"
            f"    s=socket.create_connection(({server_address!r},{port}),timeout={timeout})\n"
            "    data=b''\n"
            "    while not data.endswith(b'\\n'):\n"
            "        chunk=s.recv(256)\n"
            "        if not chunk: break\n"
            "        data+=chunk\n"
            "    print(data.decode().strip())\n"
            "except OSError as e:\n"
            "    print('ERROR', e); sys.exit(1)\n"
        )
        proc = self.exec(client, [sys.executable, "-c", code], check=False, timeout=timeout + 5)
        if proc.returncode != 0:
            return None
        seen = proc.stdout.strip()
        return seen.removeprefix("::ffff:") if seen else None


# ---- running Ansible against namespace hosts ------------------------------------------------
REPO_ROOT = os.path.dirname(HERE)


def uplink_gateway(lab):
    """gw: nm0 (the members' side, 100.64.0.1/24) and up1 (192.0.2.1/24, the default route via up): every
    IPv4 range routes out of up1."""
    lab.add_host("gw")
    lab.add_host("up")
    lab.link("gw", "nm0", "up", "m0")
    lab.link("gw", "up1", "up", "eth0")
    lab.addr("gw", "nm0", "100.64.0.1/24")
    lab.addr("gw", "up1", "192.0.2.1/24")
    lab.addr("up", "eth0", "192.0.2.254/24")
    lab.route("gw", "default", via="192.0.2.254")


def ansible_env(extra=None):
    """Environment for ansible-playbook runs against this checkout of the collection.

    The collection is found through ``<repo>/.venv/collections`` (``make venv`` links it there),
    unless ANSIBLE_COLLECTIONS_PATH is already set (for example to an installed tarball).
    """
    env = dict(os.environ)
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(REPO_ROOT, ".venv", "collections"))
    env.update({
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        "ANSIBLE_REMOTE_TMP": "/tmp/.ansible-netkit-remote",
    })
    env.update(extra or {})
    return env


def ansible_bin(name):
    venv_bin = os.path.join(REPO_ROOT, ".venv", "bin", name)
    if os.path.exists(venv_bin):
        return venv_bin
    return os.path.join(os.path.dirname(sys.executable), name)


def ansible_playbook(playbook, inventory, extra_vars=None, check=False, diff=False, limit=None,
                     timeout=600, json_output=True):
    """Run ansible-playbook; return (returncode, parsed JSON callback output or text)."""
    argv = [ansible_bin("ansible-playbook"), "-i", inventory, playbook]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if limit:
        argv += ["--limit", limit]
    env = ansible_env({"ANSIBLE_STDOUT_CALLBACK": "netkit_json",
                       "ANSIBLE_CALLBACK_PLUGINS": os.path.join(HERE, "callback_plugins")}
                      if json_output else None)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO_ROOT,
                          check=False)
    if not json_output:
        return proc.returncode, proc.stdout + proc.stderr
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        return proc.returncode, {"raw": proc.stdout, "stderr": proc.stderr}


def task_results(output, task_name=None, host=None):
    """Flatten the json callback output into (task name, host, result) tuples."""
    found = []
    for play in output.get("plays", []):
        for task in play.get("tasks", []):
            name = task["task"]["name"]
            if task_name and name != task_name:
                continue
            for hostname, result in task["hosts"].items():
                if host and hostname != host:
                    continue
                found.append((name, hostname, result))
    return found


def stats(output):
    return output.get("stats", {})
