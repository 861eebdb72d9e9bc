"""The egress_gateway role on its own (no planning play): the ranges the module applies are the inventory's.

The role hands the module ``egress_gateway_ranges`` as one comma-separated string (cheaper for ansible-core at
10,000 ranges, see roles/egress_gateway/tasks/main.yml); these runs check that the kernel ends up with the same
ranges as from a list, and that what a string would hide (an element holding a comma, a value that is not a
list) still reaches the module as it was written.
"""

import yaml

import netlab

GATEWAY_PLAY = [{"hosts": "gw", "gather_facts": False, "roles": ["netkit.egress.egress_gateway"]}]


def gateway(lab):
    netlab.uplink_gateway(lab)
    lab.addr("gw", "up1", "2001:db8:2::1/64")
    lab.sh("gw", "ip -6 route add default dev up1")


def run_role(lab, tmp_path, ranges):
    inventory = {"all": {"vars": {"ansible_connection": "netkit.egress.netns",
                                  "ansible_python_interpreter": "/usr/bin/python3"},
                         "hosts": {"gw": {"ansible_host": lab.ns("gw"), "egress_gateway_network_interface": "nm0",
                                          "egress_gateway_backend": "nftables", "egress_gateway_full_result": True,
                                          "egress_gateway_ranges": ranges}}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(GATEWAY_PLAY))
    rc, output = netlab.ansible_playbook(str(tmp_path / "play.yml"), str(tmp_path / "inventory.yml"))
    converged = [result for name, _host, result in netlab.task_results(output, host="gw")
                 if name.endswith("Converge the egress gateway (ranges, NAT, segmentation, forwarding)")]
    return rc, output, converged[0] if converged else None


def test_the_role_applies_the_inventory_ranges(lab, tmp_path):
    gateway(lab)
    rc, output, result = run_role(lab, tmp_path, ["10.1.0.0/16", "10.2.3.4/16", "2001:DB8:5::/48"])
    assert rc == 0, output
    assert result["ranges"] == ["10.1.0.0/16", "10.2.0.0/16", "2001:db8:5::/48"]
    # One hash set per prefix length: the elements are the ranges' network addresses.
    ruleset = lab.sh("gw", "nft list table inet netkit_egress").stdout
    for address in ("10.1.0.0", "10.2.0.0", "2001:db8:5::"):
        assert address in ruleset

    # A single string is one range, as for the module's own list parameter.
    rc, output, result = run_role(lab, tmp_path, "10.9.0.0/16")
    assert rc == 0, output
    assert result["ranges"] == ["10.9.0.0/16"]
    ruleset = lab.sh("gw", "nft list table inet netkit_egress").stdout
    assert "10.9.0.0" in ruleset and "10.1.0.0" not in ruleset

    rc, output, result = run_role(lab, tmp_path, [])
    assert rc == 0, output
    assert result["range_count"] == 0
    assert "10.9.0.0" not in lab.sh("gw", "nft list ruleset").stdout


def test_an_element_holding_a_comma_is_refused_by_its_index(lab, tmp_path):
    gateway(lab)
    assert run_role(lab, tmp_path, ["10.1.0.0/16"])[0] == 0
    before = lab.snapshot("gw")
    rc, output, result = run_role(lab, tmp_path, ["10.1.0.0/16", "10.2.0.0/16,10.3.0.0/16"])
    assert rc != 0
    assert result["failed"]
    assert "ranges[1]" in result["msg"] and "10.2.0.0/16,10.3.0.0/16" in result["msg"], result["msg"]
    assert lab.snapshot("gw") == before, "refused input changed the host"
