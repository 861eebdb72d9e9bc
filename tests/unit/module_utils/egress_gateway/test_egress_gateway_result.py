# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``full_result: false`` (the default): what the summary result keeps, shortens and drops, as documented in
the module's RETURN and the changelog's breaking change."""

import gc

import pytest

from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway import run as run_module
from ansible_collections.netkit.egress.plugins.module_utils._egress_gateway.run import summary_result

RANGES = [f"10.0.{index}.0/24" for index in range(5)]
SCRIPT = "nft -f - <<EOF\n" + "".join(f"line {index}\n" for index in range(10021)) + "EOF"
FULL = {"changed": True, "backend": "nftables", "ranges": RANGES, "excluded_ranges": [],
        "interfaces": {cidr: "up1" for cidr in RANGES}, "rendered": "table ...", "before": "", "after": "table ...",
        "commands": [SCRIPT, "sysctl -w net.ipv4.ip_forward=1"], "sysctls": {"net.ipv4.ip_forward": "1"},
        "persisted_files": [], "range_count": 5, "outbound_interfaces": ["up1"],
        "diff": {"before": "", "after": "table ..."}}
PARAMS = {"ranges": RANGES, "excluded_ranges": ["10.0.0.0/28"], "networks": [], "state": "present",
          "full_result": False}


def test_summary_drops_the_lists_and_keeps_counts_diff_and_the_rest():
    summary = summary_result(FULL, PARAMS)
    for dropped in ("ranges", "interfaces", "rendered", "before", "after"):
        assert dropped not in summary
    assert summary["range_count"] == 5 and summary["outbound_interfaces"] == ["up1"]
    assert summary["diff"] == FULL["diff"] and summary["sysctls"] == FULL["sysctls"]
    assert summary["changed"] is True and summary["excluded_ranges"] == []


def test_summary_shortens_only_commands_with_more_than_one_line_of_input():
    assert summary_result(FULL, PARAMS)["commands"] == ["nft -f - <<EOF ... (10,021 lines of input)",
                                                        "sysctl -w net.ipv4.ip_forward=1"]
    one_line = "nft -f - <<EOF\ndelete table inet netkit_egress\nEOF"
    assert summary_result(dict(FULL, commands=[one_line]), PARAMS)["commands"] == [one_line]


def test_summary_invocation_counts_list_parameters_of_more_than_three_items():
    module_args = summary_result(FULL, PARAMS)["invocation"]["module_args"]
    assert module_args["ranges"] == "(5 items; full_result: true shows them)"
    assert module_args["excluded_ranges"] == ["10.0.0.0/28"] and module_args["state"] == "present"
    assert PARAMS["ranges"] == RANGES, "the module's own params stay as they are"


class _RenderedModule:
    params = {"state": "rendered", "ranges": RANGES, "excluded_ranges": [], "networks": [], "network_interface": "nm0",
              "interface": "up1", "backend": "nftables", "iptables_variant": "auto", "nat": True, "reverse_nat": False,
              "forward_accept": True}

    def fail_json(self, msg):
        raise AssertionError(msg)


@pytest.mark.parametrize("enabled_before", [True, False])
def test_a_run_leaves_the_garbage_collector_as_it_found_it(enabled_before, monkeypatch):
    """The collector is off during a run (it found nothing to free in 10,000 ranges' objects) and as before
    afterwards, also when the run fails."""
    seen = []
    real_build_plan = run_module.build_plan
    monkeypatch.setattr(run_module, "build_plan", lambda *args: seen.append(gc.isenabled()) or real_build_plan(*args))
    (gc.enable if enabled_before else gc.disable)()
    try:
        assert run_module.run(_RenderedModule())["rendered"].count("10.0.4.0") == 1
        with pytest.raises(AssertionError, match="network_interface"):
            failing_params = dict(_RenderedModule.params, network_interface=None)
            run_module.run(type("Failing", (_RenderedModule,), {"params": failing_params})())
        assert gc.isenabled() is enabled_before and seen == [False]
    finally:
        gc.enable()
