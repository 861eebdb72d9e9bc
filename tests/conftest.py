"""Shared pytest setup: import paths for the collection and the namespace lab."""

import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO_ROOT, ".venv", "collections")
for path in (os.path.join(REPO_ROOT, "lab"), COLLECTIONS):
    if path not in sys.path:
        sys.path.insert(0, path)

from netlab import Lab  # noqa: E402

# Let ansible's plugin loaders resolve netkit.egress.* names (ansible-test units does the same).
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder  # noqa: E402

_AnsibleCollectionFinder(paths=[COLLECTIONS])._install()


@pytest.fixture
def lab():
    """A fresh set of namespaces with a per-process prefix; always removed, even on failure."""
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (they create network namespaces)")
    # NETKIT_TEST_PREFIX: one engineer's own prefix on a shared machine (the pid keeps processes apart).
    prefix = f"{os.environ.get('NETKIT_TEST_PREFIX', 't')}{os.getpid() % 100000}"
    instance = Lab(prefix)
    instance.destroy()
    try:
        yield instance
    finally:
        instance.destroy()
