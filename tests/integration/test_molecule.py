# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The molecule scenarios in extensions/molecule/, run the way a contributor runs them:
`molecule test -s NAME` from the collection root with the virtualenv's bin/ on PATH.

Each scenario builds its namespaces (create), converges with the collection's playbook, checks
idempotence, verifies kernel state and real TCP with testinfra, lets a gateway node fail (side effect),
verifies again and destroys everything. Namespace prefixes are unique per test process.
"""

import os
import re
import subprocess
import sys

import pytest

from netlab import existing_namespaces

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
TOPOLOGY = os.path.join(REPO_ROOT, "extensions", "molecule", "resources", "netns_topology.py")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
SCENARIOS = {"egress_gateway": "mg", "egress_nat": "mn"}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_molecule_scenario(scenario, tmp_path):
    prefix = f"{SCENARIOS[scenario]}{os.getpid() % 100000}"
    env = dict(os.environ,
               PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "ephemeral"),
               NETKIT_MOLECULE_PREFIX=prefix)
    try:
        proc = subprocess.run([os.path.join(VENV_BIN, "molecule"), "test", "-s", scenario], cwd=REPO_ROOT,
                              env=env, capture_output=True, text=True, timeout=400, check=False)
        output = ANSI_ESCAPE.sub("", proc.stdout + proc.stderr)
        assert proc.returncode == 0, output[-6000:]
        for step in ("create", "converge", "idempotence", "side_effect", "destroy"):
            assert f"{scenario} ➜ {step}: Executed: Successful" in output, step
        # testinfra's summary of each verify: only passed tests, before and after the side effect.
        summaries = re.findall(r"=+ (\d+ passed[^=]*) in [\d.]+s", output)
        assert len(summaries) == 2 and all("failed" not in s and "skipped" not in s for s in summaries), summaries
        assert not [name for name in existing_namespaces() if name.startswith(prefix + "-")], "destroy left namespaces"
    finally:
        # Should molecule itself die, never leave namespaces behind.
        subprocess.run([sys.executable, TOPOLOGY, "down", prefix], capture_output=True, timeout=120, check=False)
