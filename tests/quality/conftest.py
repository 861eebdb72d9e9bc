# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the quality gates (helpers live in quality_helpers.py)."""

import pytest

from quality_helpers import copy_collection


@pytest.fixture(scope="session")
def collection_copy(tmp_path_factory):
    """(collections root, collection directory) of a physical copy of this checkout."""
    root = str(tmp_path_factory.mktemp("collections"))
    return root, copy_collection(root)
