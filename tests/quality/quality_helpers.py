# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the quality gates: the tools the Ansible ecosystem judges a collection by, run on this checkout.

Most tools want the collection at a real ``.../ansible_collections/netkit/egress`` directory (ansible-test
refuses a symlink), so ``copy_collection`` (the session fixture ``collection_copy``) copies what git would commit (tracked files
plus untracked files that are not ignored) into a temporary tree of that shape.
"""

import os
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.path.dirname(sys.executable)
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def tool(name):
    path = os.path.join(BIN_DIR, name)
    if not os.path.exists(path):
        pytest.fail(f"{name} is not installed next to {sys.executable} (./run setup installs requirements.txt)")
    return path


def tool_env(collections_path=None, **extra):
    """The environment of a tool run: our virtualenv first on PATH (ansible-lint and ansible-test look for
    ansible-config/ansible-doc there), no colours, and the collection found only where we say."""
    env = dict(os.environ)
    env["PATH"] = BIN_DIR + os.pathsep + env.get("PATH", "")
    env.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1", "PY_COLORS": "0",
                "ANSIBLE_DEPRECATION_WARNINGS": "True", "LC_ALL": "C.UTF-8"})
    for name in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS", "ANSIBLE_CONFIG"):
        env.pop(name, None)
    if collections_path:
        env["ANSIBLE_COLLECTIONS_PATH"] = collections_path
    env.update(extra)
    return env


def run_tool(argv, cwd, env, timeout=600):
    """Run a tool; return the CompletedProcess (text). Bounded by ``timeout``."""
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def report(proc):
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-20000:]}\n--- stderr\n{proc.stderr[-20000:]}"


def collection_files():
    """What `git add` would take: tracked files plus untracked ones that .gitignore does not ignore."""
    listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO_ROOT,
                             capture_output=True, check=True).stdout.decode()
    return sorted(path for path in listing.split("\0") if path)


def copy_collection(root):
    """Copy the collection to ROOT/ansible_collections/netkit/egress; return that directory."""
    dest = os.path.join(root, "ansible_collections", "netkit", "egress")
    for path in collection_files():
        source = os.path.join(REPO_ROOT, path)
        if not os.path.isfile(source) or os.path.islink(source):
            continue  # deleted in the work tree, or a symlink (none are tracked)
        target = os.path.join(dest, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(source, target)
    return dest


def plugin_names(collection_dir, plugin_type):
    """Names of the plugins of one type, from the files (filters: one .yml documentation sidecar each)."""
    directory = os.path.join(collection_dir, "plugins", {"module": "modules"}.get(plugin_type, plugin_type))
    if plugin_type == "role":
        directory = os.path.join(collection_dir, "roles")
        return sorted(os.listdir(directory))
    wanted = ".yml" if plugin_type == "filter" else ".py"
    return sorted(name[:-len(wanted)] for name in os.listdir(directory)
                  if name.endswith(wanted) and not name.startswith("_"))
