# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared tools of the reliability tests: run modules inside namespaces (fast, in a worker process, or
as separate processes like Ansible), full host snapshots, fault-injecting binary wrappers, and the
figures that docs/reliability.md publishes."""

import json
import os
import re
import stat
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
PYTHON = os.path.join(REPO_ROOT, ".venv", "bin", "python")
COLLECTIONS = os.path.join(REPO_ROOT, ".venv", "collections")
MODULES_DIR = os.path.join(REPO_ROOT, "plugins", "modules")
OUTPUT_DIR = os.path.join(REPO_ROOT, "tests", "output")
FIGURES_PATH = os.path.join(OUTPUT_DIR, "reliability.json")

# ---- figures --------------------------------------------------------------------------------
FIGURES = {}


def record(area, subject, tried, passed, host_changes=0):
    """Add to the figure of (area, subject): cases tried, cases passed, host changes seen where none
    were allowed."""
    entry = FIGURES.setdefault((area, subject), {"area": area, "subject": subject, "tried": 0, "passed": 0,
                                                 "host_changes": 0})
    entry["tried"] += tried
    entry["passed"] += passed
    entry["host_changes"] += host_changes


def write_figures():
    if not FIGURES:
        return
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    previous = {}
    if os.path.exists(FIGURES_PATH):
        with open(FIGURES_PATH) as handle:
            previous = {(row["area"], row["subject"]): row for row in json.load(handle).get("rows", [])}
    # A partial run (one test file) updates its own rows and keeps the others.
    previous.update(FIGURES)
    rows = sorted(previous.values(), key=lambda row: (row["area"], row["subject"]))
    with open(FIGURES_PATH, "w") as handle:
        json.dump({"rows": rows}, handle, indent=1, sort_keys=True)


# ---- snapshots ------------------------------------------------------------------------------
SYSCTL_PATTERN = r"^net\.ipv[46]\.(ip_forward|conf\.[^.]+\.(forwarding|rp_filter|src_valid_mark))$"


MARK = "@@netkit-snapshot@@ "
# What lab.snapshot reads, plus every interface's sysctls, ipsets and our files, in one shell.
SNAPSHOT_COMMANDS = (
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
    ("sysctl", f"sysctl -a -r '{SYSCTL_PATTERN}' 2>/dev/null | sort"),
    ("ipset", "ipset save 2>/dev/null"),
    ("files", "(cd /etc/netkit-egress 2>/dev/null && find . -type f | sort | xargs -r sha256sum)"),
)


def snapshot(lab, host):
    """lab.snapshot (nft, both iptables variants and families, addr/route/rule, main sysctls) plus every
    interface's forwarding/rp_filter/src_valid_mark, ipsets and the host's /etc/netkit-egress files."""
    script = "; ".join(f"echo '{MARK}{label}'; {command}" for label, command in SNAPSHOT_COMMANDS)
    text = lab.sh(host, script, check=False).stdout
    parts = {}
    for chunk in text.split(MARK)[1:]:
        label, _newline, body = chunk.partition("\n")
        parts[label] = body
    # Packet counters of chain policies move with any traffic (IPv6 neighbour discovery): not state.
    for label in ("iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy"):
        parts[label] = re.sub(r"\[\d+:\d+\]", "[0:0]", parts[label])
    for label in ("iptables-legacy", "ip6tables-legacy"):
        parts[label] = drop_empty_legacy_tables(parts[label])
    # A set's hash seed is drawn at random when the set is created: a set restored at boot with the same
    # type, size and members is the same state.
    parts["ipset"] = re.sub(r" initval 0x[0-9a-f]+", "", parts.get("ipset", ""))
    return parts


def drop_empty_legacy_tables(text):
    """The legacy kernel instantiates a table on its first access, even by ``iptables-restore --test``
    (check mode): the new table has no rule and only ACCEPT policies, so it changes no packet's fate.
    Such a table is left out of the comparison (docs/reliability.md says so)."""
    kept, block = [], []
    for line in text.splitlines():
        block.append(line)
        if line == "COMMIT":
            empty = all(item.startswith(("*", "COMMIT")) or (item.startswith(":") and " ACCEPT " in item)
                        for item in block)
            if not empty:
                kept += block
            block = []
    return "\n".join(kept + block)


def changed_parts(before, after):
    return sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))


def chain_policies(parts):
    """Every base chain policy in nft and in both iptables variants (to prove none ever changes)."""
    policies = []
    for label, text in parts.items():
        if label == "nft":
            table = chain = None
            for line in text.splitlines():
                words = line.split()
                if words[:1] == ["table"]:
                    table = " ".join(words[1:3])
                if words[:1] == ["chain"]:
                    chain = words[1]
                if "policy" in words and "hook" in words:
                    policies.append((label, table, words[words.index("hook") + 1],
                                     words[words.index("policy") + 1].rstrip(";"), chain))
        elif "iptables" in label:
            table = None
            for line in text.splitlines():
                if line.startswith("*"):
                    table = line[1:]
                elif line.startswith(":") and line.split()[1] != "-":
                    policies.append((label, table, line.split()[0][1:], line.split()[1], line.split()[0][1:]))
    return {(label, table, chain): policy for label, table, _hook, policy, chain in policies}


def policies_changed(before, after):
    """Chains that existed before with another policy now (new chains of ours do not count)."""
    return sorted(f"{key}: {policy} -> {after.get(key)}" for key, policy in before.items()
                  if after.get(key, policy) != policy)


# ---- running modules ------------------------------------------------------------------------
def module_env():
    return dict(os.environ, PYTHONPATH=COLLECTIONS, LANG="C", LC_ALL="C")


class ModuleWorker:
    """A long-lived process inside one namespace that runs modules in-process (see module_worker.py)."""

    def __init__(self, lab, host):
        self.lab, self.host = lab, host
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns(host), PYTHON, os.path.join(HERE, "module_worker.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=module_env())

    def call(self, module, args, check=False, diff=False, binaries=None):
        """(result, commands, writes) of one module run."""
        request = {"module": module, "args": args, "check": check, "diff": diff, "binaries": binaries or {}}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"module worker in {self.host} died")
        answer = json.loads(line)
        return answer["result"], answer["commands"], answer["writes"]

    def run(self, module, args, check=False, diff=False, binaries=None):
        return self.call(module, args, check, diff, binaries)[0]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_module_process(lab, host, module, args, tmp_path, name="args", check=False):
    """A module run as its own process, as Ansible starts it (``python module.py ARGS_FILE``)."""
    path = os.path.join(str(tmp_path), f"{name}.json")
    module_args = dict(args, _ansible_check_mode=check, _ansible_diff=True)
    with open(path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": module_args}, handle)
    return subprocess.Popen(["ip", "netns", "exec", lab.ns(host), PYTHON, os.path.join(MODULES_DIR, f"{module}.py"),
                             path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=module_env())


def module_result(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no module result (rc={proc.returncode}): {out}\n{err}")


# Commands that only read (or dry-run) host state.
READ_ONLY = (
    lambda argv: argv[1:3] == ["-j", "list"] or argv[1:2] == ["list"] or argv[1:3] == ["-c", "-f"],  # nft
    lambda argv: os.path.basename(argv[0]).endswith("-save") or "--test" in argv or "--version" in argv,
    lambda argv: os.path.basename(argv[0]) == "ip" and ("-j" in argv or argv[-3:-1] == ["route", "get"]),
)


def is_read_only(argv):
    name = os.path.basename(argv[0])
    if name == "nft":
        return READ_ONLY[0](argv)
    if "tables" in name:
        return READ_ONLY[1](argv)
    if name == "ip":
        return READ_ONLY[2](argv)
    return False


# ---- fault injection ------------------------------------------------------------------------
ONCE = """\
    # A fault strikes once: the rollback and later runs get the real binary.
    if [ -e "$0.fired" ]; then exec {real} "$@"; fi
    touch "$0.fired"
"""


def write_wrapper(directory, name, body):
    """An executable shell script ``directory/name``."""
    path = os.path.join(str(directory), name)
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\n" + textwrap.dedent(body))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def nft_rejecting_wrapper(directory):
    """``nft`` that checks (``-c``) and reads truthfully, but on apply hands the kernel the script plus
    one rule it rejects: the real kernel refuses the whole transaction."""
    return write_wrapper(directory, "nft", """\
        case " $* " in *" -c "*|*" list "*) exec /usr/sbin/nft "$@";; esac
        """ + ONCE.format(real="/usr/sbin/nft") + """\
        script=$(cat)
        printf '%s\\nadd rule inet netkit_no_such_table no_such_chain accept\\n' "$script" | exec /usr/sbin/nft "$@"
        """)


def killed_wrapper(directory, name, real):
    """``name`` that works for reads and checks but is killed (SIGKILL) instead of applying."""
    return write_wrapper(directory, name, f"""\
        case " $* " in *" -c "*|*" list "*|*" --test "*|*" -j "*|*"--version"*) exec {real} "$@";; esac
        """ + ONCE.format(real=real) + """\
        kill -9 $$
        """)


def iptables_rejecting_wrapper(directory, name, real):
    """``iptables-restore``: ``--test`` is truthful; on apply the last table of the file gets one rule
    the kernel refuses (a jump to a chain that does not exist), so the earlier tables commit and the
    last one does not: a half-applied file."""
    return write_wrapper(directory, name, f"""\
        case " $* " in *" --test "*) exec {real} "$@";; esac
        """ + ONCE.format(real=real) + f"""\
        awk '{{ lines[NR] = $0; if ($0 == "COMMIT") last = NR }}
             END {{ for (i = 1; i <= NR; i++) {{ if (i == last) print "-A NETKIT-EGRESS-NAT -j NETKIT-NO-SUCH-CHAIN";
                                               print lines[i] }} }}' | exec {real} "$@"
        """)


def ip_batch_failing_wrapper(directory, after_lines):
    """``ip`` whose ``-batch`` applies the first ``after_lines`` lines for real, then fails like the
    kernel refusing the next line (``ip -batch`` stops at the first error; the earlier lines stay)."""
    return write_wrapper(directory, "ip", f"""\
        case " $* " in
          *" -force "*) exec /usr/sbin/ip "$@";;
          *" -batch "*)
            if [ -e "$0.fired" ]; then exec /usr/sbin/ip "$@"; fi
            touch "$0.fired"
            input=$(cat)
            printf '%s\\n' "$input" | head -n {after_lines} | /usr/sbin/ip "$@" || exit $?
            echo "Error: injected: the kernel refused line {after_lines + 1}" >&2
            echo "Command failed -:{after_lines + 1}" >&2
            exit 1;;
        esac
        exec /usr/sbin/ip "$@"
        """)


def python_path():
    return sys.executable
