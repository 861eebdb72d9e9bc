# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""antsibull-changelog: the fragments lint clean and render into release notes that list every plugin."""

import os
import re

import yaml

from quality_helpers import plugin_names, report, run_tool, tool, tool_env


def test_fragments_lint(collection_copy):
    _root, collection = collection_copy
    proc = run_tool([tool("antsibull-changelog"), "lint"], cwd=collection, env=tool_env())
    assert proc.returncode == 0 and not proc.stdout.strip(), report(proc)
    proc = run_tool([tool("antsibull-changelog"), "lint-changelog-yaml", "changelogs/changelog.yaml"],
                    cwd=collection, env=tool_env())
    assert proc.returncode == 0 and not proc.stdout.strip(), report(proc)


def test_release_notes_render(collection_copy, tmp_path):
    root, collection = collection_copy
    # A release consumes the fragments: make it in a throw-away copy of the copy.
    release_root = tmp_path / "release"
    os.makedirs(release_root / "ansible_collections" / "netkit")
    release = str(release_root / "ansible_collections" / "netkit" / "egress")
    proc = run_tool(["cp", "-a", collection, release], cwd=root, env=tool_env())
    assert proc.returncode == 0, report(proc)
    with open(os.path.join(collection, "galaxy.yml"), encoding="utf-8") as handle:
        version = yaml.safe_load(handle)["version"]
    # Plugins whose version_added is the release's version are listed as new.
    proc = run_tool([tool("antsibull-changelog"), "release", "--version", version, "--date", "2026-01-01"],
                    cwd=release, env=tool_env(collections_path=str(release_root)))
    assert proc.returncode == 0, report(proc)
    with open(os.path.join(release, "CHANGELOG.rst"), encoding="utf-8") as handle:
        notes = handle.read()
    assert f"v{version}" in notes
    for plugin_type, directory, suffix in (("module", "modules", ".py"), ("filter", "filter", ".yml"),
                                           ("connection", "connection", ".py")):
        for name in plugin_names(collection, plugin_type):
            with open(os.path.join(collection, "plugins", directory, name + suffix), encoding="utf-8") as handle:
                added = re.search(r"^ *version_added: *['\"]?([0-9.]+)", handle.read(), re.MULTILINE)
            if added and added.group(1) == version:
                assert f"netkit.egress.{name} - " in notes, f"new {plugin_type} {name} missing from the notes"
