# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 4, items 1, 4 and 8 (policies) for every module: check mode is truthful on an empty, a
converged and a drifted host, and every hand-made drift is reported by check mode and repaired.

For each scenario: a check run (with diff) on the empty host changes nothing (full snapshot) and its
changed/diff/commands equal the real run that follows; on the converged host both report no change;
then, one drift at a time (a deleted rule, set element, floating IP, route, ip rule, a reset sysctl),
the check run reports the drift without changing anything, the real run repairs it with the same
prediction, and the host is byte-identical to the converged host again. No chain policy ever changes.
"""

import pytest

import harness
from scenarios import SCENARIOS

COMPARED = ("changed", "diff", "commands", "added", "removed")


def prediction(result):
    return {key: result.get(key) for key in COMPARED if key in result}


def check_then_real(lab, worker, host, module, args, problems, label):
    """One check run and the real run after it. Returns (check ok, host changed by check)."""
    before = harness.snapshot(lab, host)
    check = worker.run(module, args, check=True, diff=True)
    after_check = harness.snapshot(lab, host)
    real = worker.run(module, args, diff=True)
    host_changed = int(after_check != before)
    ok = not check.get("failed") and not real.get("failed") and not host_changed \
        and prediction(check) == prediction(real)
    if not ok:
        problems.append(f"{label}: check {prediction(check)} / real {prediction(real)} / "
                        f"check changed {harness.changed_parts(before, after_check)} / "
                        f"{check.get('msg') or real.get('msg') or ''}")
    return ok, host_changed, check, real


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario[0] for scenario in SCENARIOS])
def test_check_mode_truthful_and_drift_repaired(topo, workers, scenario):
    name, host, module, args, drifts = scenario
    lab, worker = topo, workers(host)
    problems = []
    policies = harness.chain_policies(harness.snapshot(lab, host))
    tried = passed = host_changes = 0

    # Empty host, then converged host.
    for label, expect_change in (("empty host", True), ("converged host", False)):
        ok, host_changed, check, _real = check_then_real(lab, worker, host, module, args, problems, label)
        if check.get("changed") != expect_change:
            problems.append(f"{label}: check reported changed={check.get('changed')}")
            ok = False
        tried, passed, host_changes = tried + 1, passed + ok, host_changes + host_changed
    converged = harness.snapshot(lab, host)

    # One drift at a time.
    drift_tried = drift_passed = 0
    for what, command in drifts:
        lab.sh(host, command)
        drifted = harness.snapshot(lab, host)
        assert drifted != converged, f"the drift {what} ({command}) changed nothing"
        ok, host_changed, check, real = check_then_real(lab, worker, host, module, args, problems,
                                                        f"drift {what}")
        repaired = harness.snapshot(lab, host)
        again = worker.run(module, args, check=True)
        drift_ok = bool(check.get("changed") and real.get("changed") and ok
                        and repaired == converged and again.get("changed") is False)
        if not drift_ok:
            problems.append(f"drift {what}: check changed={check.get('changed')}, real changed="
                            f"{real.get('changed')}, differs from converged: "
                            f"{harness.changed_parts(converged, repaired)}, next run changed={again.get('changed')}")
        tried, passed, host_changes = tried + 1, passed + ok, host_changes + host_changed
        drift_tried, drift_passed = drift_tried + 1, drift_passed + drift_ok

    final_policies = harness.chain_policies(harness.snapshot(lab, host))
    harness.record("1 check mode truthful (module)", name, tried, passed, host_changes)
    harness.record("4 drift reported and repaired", name, drift_tried, drift_passed)
    changed_policies = harness.policies_changed(policies, final_policies)
    harness.record("8 chain policies unchanged", name, 1, int(not changed_policies), len(changed_policies))
    assert not problems, "\n".join(problems)
    assert not changed_policies
