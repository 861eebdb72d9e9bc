# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible-test: every default sanity test passes with empty ignore files, and the unit tests run under it."""

import glob
import os
import re
import sys

from quality_helpers import PYTHON_VERSION, REPO_ROOT, report, run_tool, tool, tool_env


def test_sanity_ignore_files_are_empty():
    for path in glob.glob(os.path.join(REPO_ROOT, "tests", "sanity", "ignore-*.txt")):
        with open(path, encoding="utf-8") as handle:
            entries = [line for line in handle.read().splitlines() if line.strip()]
        assert not entries, f"{os.path.relpath(path, REPO_ROOT)} must stay empty: fix the findings instead"


def test_sanity(collection_copy):
    _root, collection = collection_copy
    proc = run_tool([tool("ansible-test"), "sanity", "--local", "--python", PYTHON_VERSION, "--color", "no"],
                    cwd=collection, env=tool_env(), timeout=900)
    assert proc.returncode == 0, report(proc)
    assert "ERROR" not in proc.stdout + proc.stderr, report(proc)


def test_units(collection_copy):
    _root, collection = collection_copy
    proc = run_tool([tool("ansible-test"), "units", "--local", "--python", PYTHON_VERSION, "--color", "no"],
                    cwd=collection, env=tool_env(), timeout=600)
    assert proc.returncode == 0, report(proc)
    collected = run_tool([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                          "tests/unit"], cwd=REPO_ROOT, env=tool_env())
    expected = re.search(r"(\d+) tests? collected", collected.stdout)
    passed = re.search(r"(\d+) passed", proc.stdout)
    assert expected and passed, report(proc) + report(collected)
    # (plain pytest over the checkout collects the same files: they were copied a moment ago)
    assert int(passed.group(1)) == int(expected.group(1)), "ansible-test units must run every unit test"
    assert not re.search(r"\d+ (failed|error)", proc.stdout), report(proc)
