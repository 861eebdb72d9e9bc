"""Shared pytest setup: import paths for the collection and the namespace lab."""

import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO_ROOT, ".venv", "collections")
for path in (os.path.join(REPO_ROOT, "lab"), COLLECTIONS):
    if path not in sys.path:
        sys.path.insert(0, path)

from netlab import Lab, lab_prefix  # noqa: E402

# Let ansible's plugin loaders resolve netkit.egress.* names (ansible-test units does the same).
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder  # noqa: E402

_AnsibleCollectionFinder(paths=[COLLECTIONS])._install()


@pytest.fixture
def lab():
    """A fresh set of namespaces with a per-process prefix; always removed, even on failure."""
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (they create network namespaces)")
    instance = Lab(lab_prefix("t"))
    instance.destroy()
    try:
        yield instance
    finally:
        instance.destroy()
