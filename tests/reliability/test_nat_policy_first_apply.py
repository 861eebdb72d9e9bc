# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nat_policy's first apply on a source node (issue 5): with no table of ours yet no packet carries our
marks, so the new ``ip rule``s and slot routes go first without an ``nft -c`` of the script (one nft
process instead of two at 10,000 sources). When the ``nft -f`` after them fails, they must be rolled back:
the host is byte-identical to before, and the error says what failed.

Faults as in test_atomic_apply.py: the module worker swaps ``nft`` for a wrapper that reads and checks
truthfully and, on apply, hands the real kernel something it refuses, or is killed.
"""

import pytest

import harness
from scenarios import NAT_SOURCE_ARGS

FAULTS = {
    "nft rejected": (lambda tmp_path: {"nft": harness.nft_rejecting_wrapper(tmp_path)},
                     ["netkit_no_such_table", "rolled back"]),
    "nft killed": (lambda tmp_path: {"nft": harness.killed_wrapper(tmp_path, "nft", "/usr/sbin/nft")},
                   ["rc=-9", "rolled back"]),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_first_apply_that_fails_leaves_source_node_as_it_was(topo, workers, tmp_path, fault):
    binaries, words = FAULTS[fault]
    worker = workers("nb")
    before = harness.snapshot(topo, "nb")
    predicted = worker.run("nat_policy", NAT_SOURCE_ARGS, check=True)
    assert predicted.get("changed") and not predicted.get("failed"), predicted
    # The rules and routes really are applied before the table (and then undone): not a no-op run.
    assert any(line.startswith("ip -4 rule add") for line in predicted["commands"]), predicted["commands"]

    result = worker.run("nat_policy", NAT_SOURCE_ARGS, binaries=binaries(tmp_path))
    after = harness.snapshot(topo, "nb")
    differences = harness.changed_parts(before, after)
    assert result.get("failed"), result
    assert not differences, {key: (before[key], after[key]) for key in differences}
    assert all(word in result.get("msg", "") for word in words), result.get("msg")

    # Without the fault the same first apply works, and the next run has nothing to do.
    assert worker.run("nat_policy", NAT_SOURCE_ARGS).get("changed") is True
    assert worker.run("nat_policy", NAT_SOURCE_ARGS, check=True).get("changed") is False
