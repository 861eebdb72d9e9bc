# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's docs site: antsibull-docs lints the docs and builds the site, Sphinx renders it with
warnings as errors. Broken markup, a reference to a plugin that does not exist or a bad RST table fail here."""

import os
import re
import zlib

from quality_helpers import plugin_names, report, run_tool, tool, tool_env

# Labels of the Ansible docs site that antsibull-docs' own templates point to. When that site is not
# reachable (offline CI), Sphinx falls back to the local inventory file the generated conf.py names; it holds
# these labels only, so a reference to anything else that is not in our own pages still fails the build.
ANSIBLE_DOCS_LABELS = {
    "ansible_configuration_settings": "reference_appendices/config.html#ansible-configuration-settings",
    "common_return_values": "reference_appendices/common_return_values.html#common-return-values",
}


def write_inventory(path, labels):
    """A Sphinx objects.inv (version 2) with std:label entries."""
    lines = "".join(f"{label} std:label -1 {uri} {label}\n" for label, uri in sorted(labels.items()))
    with open(path, "wb") as handle:
        handle.write(b"# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n"
                     b"# The remainder of this file is compressed using zlib.\n")
        handle.write(zlib.compress(lines.encode()))


def test_lint_collection_docs(collection_copy):
    _root, collection = collection_copy
    proc = run_tool([tool("antsibull-docs"), "lint-collection-docs", "--plugin-docs", collection],
                    cwd=collection, env=tool_env())
    assert proc.returncode == 0 and not proc.stdout.strip(), report(proc)


def test_docs_site_builds(collection_copy, tmp_path):
    root, collection = collection_copy
    site = str(tmp_path / "site")
    os.mkdir(site, 0o755)  # antsibull-docs wants a directory only its owner can write
    env = tool_env(collections_path=root)
    proc = run_tool([tool("antsibull-docs"), "sphinx-init", "--use-current", "--fail-on-error", "--dest-dir", site,
                     "netkit.egress"], cwd=root, env=env)
    assert proc.returncode == 0, report(proc)
    with open(os.path.join(site, "conf.py"), encoding="utf-8") as handle:
        conf = handle.read()
    # Each intersphinx entry of the generated conf.py names a local fallback file: provide them.
    for identifier, fallback in re.findall(r"'(\w+)': \('[^']+', \(None, '\.\./([\w.]+\.inv)'\)\)", conf):
        write_inventory(os.path.join(site, fallback), ANSIBLE_DOCS_LABELS if identifier.startswith("ansible") else {})
    with open(os.path.join(site, "conf.py"), "a", encoding="utf-8") as handle:
        handle.write("\nintersphinx_timeout = 5\n")

    # build.sh of sphinx-init, step by step: the collection's RST, then Sphinx with warnings as errors.
    rst = os.path.join(site, "rst")
    os.makedirs(rst, mode=0o755, exist_ok=True)
    os.chmod(rst, 0o755)
    proc = run_tool([tool("antsibull-docs"), "--config-file", "antsibull-docs.cfg", "collection", "--cleanup",
                     "everything", "--use-current", "--fail-on-error", "--dest-dir", "rst", "netkit.egress"],
                    cwd=site, env=env)
    assert proc.returncode == 0, report(proc)
    proc = run_tool([tool("sphinx-build"), "-M", "html", "rst", "build", "-c", ".", "-W", "--keep-going", "-q"],
                    cwd=site, env=env, timeout=600)
    assert proc.returncode == 0, report(proc)
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, report(proc)

    pages = os.path.join(site, "build", "html", "collections", "netkit", "egress")
    for plugin_type in ("module", "filter", "connection", "role"):
        for name in plugin_names(collection, plugin_type):
            page = os.path.join(pages, f"{name}_{plugin_type}.html")
            assert os.path.isfile(page), f"no page for {plugin_type} {name}"
            with open(page, encoding="utf-8") as handle:
                html = handle.read()
            assert f"netkit.egress.{name}" in html
