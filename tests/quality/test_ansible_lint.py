# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible-lint with the production profile (.ansible-lint) passes on the whole collection."""

import os

import yaml

from quality_helpers import REPO_ROOT, report, run_tool, tool, tool_env


def test_config_is_production_without_skips():
    with open(os.path.join(REPO_ROOT, ".ansible-lint"), encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    assert config["profile"] == "production"
    assert not config.get("skip_list") and not config.get("warn_list"), "fix findings instead of skipping them"


def test_ansible_lint_production(collection_copy):
    root, collection = collection_copy
    # --offline: no Galaxy; the collection itself is found on ANSIBLE_COLLECTIONS_PATH (the copy).
    proc = run_tool([tool("ansible-lint"), "--offline", "--nocolor"], cwd=collection,
                    env=tool_env(collections_path=root), timeout=600)
    assert proc.returncode == 0, report(proc)
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr, report(proc)
    assert "0 failure(s), 0 warning(s)" in proc.stdout + proc.stderr, report(proc)
