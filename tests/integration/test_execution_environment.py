# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The execution environment: execution-environment.yml (ansible-builder schema 3) produces a build context
that installs the collection's tarball, and the installed collection declares exactly its controller-side
Python requirements (meta/execution-environment.yml). No image is built or pulled (no container engine)."""

import os
import shutil
import subprocess
import sys

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
GALAXY = yaml.safe_load(open(os.path.join(REPO_ROOT, "galaxy.yml"), encoding="utf-8"))
TARBALL = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"


def tool(name, *args, cwd=None):
    proc = subprocess.run([os.path.join(VENV_BIN, name), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def requirement_names(lines):
    names = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line.split(">")[0].split("=")[0].split("<")[0].strip().lower())
    return names


def test_collection_metadata_lists_only_the_controllers_runtime_requirements():
    meta = yaml.safe_load(open(os.path.join(REPO_ROOT, "meta", "execution-environment.yml"), encoding="utf-8"))
    python_file = meta["dependencies"]["python"]
    assert not os.path.isabs(python_file), "ansible-builder requires paths relative to the collection root"
    with open(os.path.join(REPO_ROOT, python_file), encoding="utf-8") as handle:
        assert sorted(requirement_names(handle)) == ["jinja2", "netaddr"]


def test_ansible_builder_creates_a_context_that_installs_the_built_collection(tmp_path):
    definition_dir = tmp_path / "ee"
    definition_dir.mkdir()
    tool("ansible-galaxy", "collection", "build", "--output-path", str(definition_dir), REPO_ROOT)
    assert (definition_dir / TARBALL).is_file()
    shutil.copy(os.path.join(REPO_ROOT, "execution-environment.yml"), definition_dir)

    context = tmp_path / "context"
    tool("ansible-builder", "create", "-f", str(definition_dir / "execution-environment.yml"), "-c", str(context),
         "--output-filename", "Containerfile")

    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.12"' in containerfile
    assert "ansible-core>=2.19,<2.20" in containerfile and "ansible-runner" in containerfile
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    # The collection's own requirements are introspected in the image, from the installed collection.
    assert "introspect.py introspect" in containerfile

    # The galaxy requirements name the tarball that the build context carries, at the path the image sees.
    galaxy_requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert galaxy_requirements == {"collections": [{"name": f"/build/collections/{TARBALL}", "type": "file"}]}, (
        "execution-environment.yml must name the tarball of galaxy.yml's version")
    assert (context / "_build" / "collections" / TARBALL).is_file()


def test_installed_collection_introspects_to_its_python_requirements(tmp_path):
    # What the image's builder stage runs on the installed collections, here on the host.
    tool("ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), REPO_ROOT)
    collections = tmp_path / "collections"
    tool("ansible-galaxy", "collection", "install", "--offline", "-p", str(collections), str(tmp_path / TARBALL))
    pip_file = tmp_path / "requirements.txt"
    tool("ansible-builder", "introspect", str(collections), "--write-pip", str(pip_file))
    lines = pip_file.read_text().splitlines()
    assert sorted(requirement_names(lines)) == ["jinja2", "netaddr"]
    assert all("from collection netkit.egress" in line for line in lines if line.strip())
