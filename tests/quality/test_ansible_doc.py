# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible-doc renders every module, filter, connection plugin and role without an error or a warning, and
every plugin documents its check mode, diff mode and platform truthfully."""

import json
import os
import re

import pytest

from quality_helpers import plugin_names, report, run_tool, tool, tool_env

PLUGIN_TYPES = ("module", "filter", "connection", "role")


def ansible_doc(collection_copy, plugin_type, *args):
    root, collection = collection_copy
    names = [f"netkit.egress.{name}" for name in plugin_names(collection, plugin_type)]
    assert names, f"no {plugin_type} found"
    proc = run_tool([tool("ansible-doc"), "-t", plugin_type, *args, *names], cwd=root,
                    env=tool_env(collections_path=root))
    assert proc.returncode == 0, report(proc)
    assert not proc.stderr.strip(), f"ansible-doc warned:\n{proc.stderr}"
    return proc.stdout, names


@pytest.mark.parametrize("plugin_type", PLUGIN_TYPES)
def test_ansible_doc_renders_text(collection_copy, plugin_type):
    text, names = ansible_doc(collection_copy, plugin_type)
    for name in names:
        assert name in text
    if plugin_type != "role":
        assert text.count("EXAMPLES") == len(names)


@pytest.mark.parametrize("plugin_type", ("module", "filter", "connection"))
def test_every_plugin_has_examples_and_true_attributes(collection_copy, plugin_type):
    _root, collection = collection_copy
    output, names = ansible_doc(collection_copy, plugin_type, "--json")
    docs = json.loads(output)
    assert sorted(docs) == sorted(names)
    for name, entry in docs.items():
        doc = entry["doc"]
        assert entry.get("examples", "").strip(), f"{name}: no EXAMPLES"
        if plugin_type != "connection":
            assert entry.get("return"), f"{name}: no RETURN"
        attributes = doc.get("attributes") or {}
        assert {"check_mode", "diff_mode", "platform"} <= set(attributes), f"{name}: attributes incomplete"
        assert attributes["platform"].get("platforms"), f"{name}: attributes.platform.platforms missing"
        if plugin_type == "module":
            short_name = name.split(".")[-1]
            with open(os.path.join(collection, "plugins", "modules", short_name + ".py"), encoding="utf-8") as handle:
                source = handle.read()
            # A thin shell's work lives in module_utils/_<module>/run.py (or the older _<module>_run.py):
            # the promise is kept by the two together.
            for run_path in (os.path.join(collection, "plugins", "module_utils", f"_{short_name}", "run.py"),
                             os.path.join(collection, "plugins", "module_utils", f"_{short_name}_run.py")):
                if os.path.exists(run_path):
                    with open(run_path, encoding="utf-8") as handle:
                        source += handle.read()
            check_mode = attributes["check_mode"]["support"]
            diff_mode = attributes["diff_mode"]["support"]
            # What the documentation promises is what the code does.
            assert ("supports_check_mode=True" in source) == (check_mode in ("full", "partial")), name
            assert re.search(r"if not module\.check_mode|if .*and not module\.check_mode", source), \
                f"{name}: check mode is claimed but nothing is guarded by module.check_mode"
            assert ("module._diff" in source) == (diff_mode in ("full", "partial")), name
