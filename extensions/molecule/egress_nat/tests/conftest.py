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
    return netns_testinfra.netns_hosts(["gw1", "gw2", "node1", "node2", "rt", "p1a", "p1b", "p2a", "p2b"])


@pytest.fixture(scope="session")
def live_gateways(hosts):
    """Gateway nodes whose machine exists (after the side effect, one of them is gone)."""
    alive = {name: hosts[name] for name in ("gw1", "gw2")
             if netns_testinfra.namespace_exists(hosts[name].backend.namespace)}
    assert alive, "no gateway node left"
    return alive
