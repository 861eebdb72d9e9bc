# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""testinfra hosts for the scenario's namespaces (see ../../resources/netns_testinfra.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "resources"))

import netns_testinfra  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="session")
def hosts():
    return netns_testinfra.netns_hosts(["gw", "m1", "m2", "srv"])
