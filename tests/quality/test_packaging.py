# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Galaxy tarball: built from the checkout (with its .venv, caches and lab state lying around), it holds
only what git would commit; installed into an empty collections path, its playbook converges a namespace lab
by FQCN and real TCP leaves through the gateway."""

import json
import os
import tarfile

import pytest
import yaml

import lab as mesh_lab
import netlab
from quality_helpers import REPO_ROOT, collection_files, report, run_tool, tool, tool_env

ALWAYS_IN_TARBALL = {"MANIFEST.json", "FILES.json"}


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("dist"))
    proc = run_tool([tool("ansible-galaxy"), "collection", "build", "--output-path", out, REPO_ROOT],
                    cwd=out, env=tool_env())
    assert proc.returncode == 0, report(proc)
    with open(os.path.join(REPO_ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        version = yaml.safe_load(handle)["version"]
    path = os.path.join(out, f"netkit-egress-{version}.tar.gz")
    assert os.path.isfile(path), os.listdir(out)
    return path


def test_tarball_holds_what_git_would_commit(tarball):
    with tarfile.open(tarball) as archive:
        files = {member.name for member in archive.getmembers() if member.isfile()}
    committed = set(collection_files())
    junk = sorted(files - committed - ALWAYS_IN_TARBALL)
    assert not junk, f"files that git ignores are in the tarball (add them to build_ignore): {junk[:20]}"
    content = {path for path in committed if path.split("/")[0] in ("plugins", "roles", "playbooks", "meta")}
    assert content <= files, f"missing from the tarball: {sorted(content - files)}"
    with tarfile.open(tarball) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    assert manifest["collection_info"]["namespace"] == "netkit"
    assert manifest["collection_info"]["name"] == "egress"
    assert manifest["collection_info"]["dependencies"] == {}, "the tarball must install offline"


def test_installed_tarball_converges_a_lab(tarball, tmp_path, lab, monkeypatch):
    collections = str(tmp_path / "collections")
    os.mkdir(collections)
    proc = run_tool([tool("ansible-galaxy"), "collection", "install", "--offline", tarball, "-p", collections],
                    cwd=str(tmp_path), env=tool_env())
    assert proc.returncode == 0, report(proc)

    # Only the installed copy is on the collections path (not the checkout that .venv/collections links).
    env = tool_env(collections_path=collections)
    proc = run_tool([tool("ansible-galaxy"), "collection", "list", "netkit.egress", "--format", "json"],
                    cwd=str(tmp_path), env=env)
    assert proc.returncode == 0, report(proc)
    assert list(json.loads(proc.stdout)) == [os.path.join(collections, "ansible_collections")], proc.stdout

    mesh_lab.build(lab)
    lab.start_whoami("srv", mesh_lab.WHOAMI_PORT, lifetime=300)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump(mesh_lab.inventory(lab), sort_keys=False))
    assert lab.whoami("m1", mesh_lab.address(mesh_lab.SERVER[0])) is None, "no route before the playbook"

    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", collections)  # netlab.ansible_env keeps a value we set
    rc, output = netlab.ansible_playbook("netkit.egress.egress_gateway", str(inventory))
    assert rc == 0, output
    stats = netlab.stats(output)
    assert set(stats) == {"gw", "m1", "m2"}
    assert all(counts["failures"] == 0 and counts["unreachable"] == 0 for counts in stats.values()), stats
    # The office server knows only its own subnet: the gateway's NAT address is what it sees from a member.
    gateway_office_address = mesh_lab.address(mesh_lab.GATEWAY["eth1"][0])
    assert lab.whoami("m1", mesh_lab.address(mesh_lab.SERVER[0])) == gateway_office_address
