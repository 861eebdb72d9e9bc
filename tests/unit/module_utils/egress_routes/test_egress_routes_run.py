"""The egress_routes run's wiring, with a fake `ip` (no kernel): what it reads, when it applies."""

import json

import pytest

from ansible_collections.netkit.egress.plugins.module_utils._egress_routes import run as egress_routes
from ansible_collections.netkit.egress.plugins.module_utils._host import Host, HostError
from ansible_collections.netkit.egress.plugins.module_utils._net import InputError

OURS_V4 = {"dst": "192.168.50.0/24", "gateway": "10.100.0.1", "dev": "nm0", "protocol": "201", "metric": 100,
           "flags": []}
FOREIGN_V4 = {"dst": "198.51.100.0/24", "gateway": "10.100.0.1", "dev": "nm0", "protocol": "4", "metric": 100,
              "flags": []}
CONNECTED = {"dst": "10.100.0.0/24", "dev": "nm0", "protocol": "2", "scope": "253", "flags": []}


class FakeModule:
    """Just enough of AnsibleModule for Host: answers `ip` reads from tables, records everything."""

    def __init__(self, params, routes_v4=(), routes_v6=(), check_mode=False, diff=False):
        self.params = dict({"routes": [], "metric": 100, "table": "main", "protocol": 201, "state": "present"},
                           **params)
        self.check_mode = check_mode
        self._diff = diff
        self.tables = {"-4": list(routes_v4), "-6": list(routes_v6)}
        self.commands = []
        self.batches = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return f"/usr/sbin/{name}"

    def run_command(self, argv, data=None, binary_data=False, environ_update=None, check_rc=False):
        args = list(argv[1:])
        self.commands.append(args)
        if args[:2] == ["-batch", "-"]:
            self.batches.append(data.splitlines())
            return 0, "", ""
        if args[:2] == ["-j", "link"]:
            return 0, json.dumps([{"ifname": "lo"}, {"ifname": "nm0"}]), ""
        if args[0] == "-j" and args[2:4] == ["route", "get"]:
            address = args[4]
            if address.startswith("10.100.0.") or address.startswith("fd00:100::"):
                return 0, json.dumps([{"dst": address, "dev": "nm0", "flags": []}]), ""
            return 0, json.dumps([{"dst": address, "gateway": "10.0.0.254", "dev": "eth0", "flags": []}]), ""
        if args[0] == "-j" and args[2:4] == ["-N", "route"]:
            return 0, json.dumps(self.tables[args[1]]), ""
        raise AssertionError(f"unexpected command {args}")


def converge(module):
    """The run without the host lock (a unit test takes no lock file)."""
    return egress_routes.converge(module, Host(module))


def run(**kwargs):
    module = FakeModule(**kwargs)
    return module, converge(module)


def test_adds_missing_routes_in_one_batch():
    module, result = run(params={"routes": [{"destination": "192.168.50.0/24", "via": "10.100.0.1", "dev": "nm0"},
                                            {"destination": "2001:db8:50::/64", "via": "fd00:100::1"}]})
    assert result["changed"] is True
    assert module.batches == [[
        "route replace 192.168.50.0/24 via 10.100.0.1 dev nm0 metric 100 table main proto 201",
        "route replace 2001:db8:50::/64 via fd00:100::1 metric 100 table main proto 201"]]


def test_converged_routes_change_nothing():
    module, result = run(params={"routes": [{"destination": "192.168.50.0/24", "via": "10.100.0.1"}],
                                 "state": "exact"}, routes_v4=[CONNECTED, OURS_V4, FOREIGN_V4])
    assert result["changed"] is False and module.batches == []
    assert result["routes"] == [{"destination": "192.168.50.0/24", "via": "10.100.0.1", "dev": "nm0", "metric": 100}]


def test_check_mode_predicts_and_applies_nothing():
    module, result = run(params={"routes": [], "state": "exact"}, routes_v4=[OURS_V4, FOREIGN_V4],
                         check_mode=True, diff=True)
    assert result["changed"] is True and result["routes"] == []
    assert result["commands"] == ["route del 192.168.50.0/24 via 10.100.0.1 dev nm0 metric 100 table main proto 201"]
    assert result["diff"] == {"before": "192.168.50.0/24 via 10.100.0.1 dev nm0 metric 100\n", "after": ""}
    assert module.batches == []


@pytest.mark.parametrize("params, message", [
    ({"routes": [{"destination": "10.0.0.0/33", "via": "10.100.0.1"}]}, "routes[0].destination: '10.0.0.0/33'"),
    ({"routes": [{"destination": "10.0.0.0/8", "via": "10.100.0.1", "dev": "nm0 proto 4"}]}, "routes[0].dev:"),
    ({"routes": [{"destination": "10.0.0.0/8", "via": "10.100.0.1", "dev": "wg9"}]},
     "routes[0].dev: 'wg9' does not exist on the host"),
    ({"routes": [{"destination": "10.0.0.0/8", "via": "172.16.0.1"}]},
     "routes[0].via: 172.16.0.1 is not on a directly connected network"),
    ({"routes": [{"destination": "198.51.100.0/24", "via": "10.100.0.1"}]},
     "routes[0]: a route to 198.51.100.0/24 with metric 100 already exists and was not created by this module"),
    ({"table": "local"}, "table: 'local'"),
    ({"protocol": 4}, "protocol: 4 belongs to the kernel"),
])
def test_bad_input_fails_before_any_change(params, message):
    module = FakeModule(params=params, routes_v4=[FOREIGN_V4])
    with pytest.raises(InputError) as error:
        converge(module)
    assert message in str(error.value)
    assert module.batches == []


def test_absent_never_deletes_a_foreign_route():
    module, result = run(params={"routes": [{"destination": "198.51.100.0/24"}], "state": "absent"},
                         routes_v4=[FOREIGN_V4])
    assert result["changed"] is False and module.batches == []


def test_gathered_reads_only():
    module, result = run(params={"state": "gathered", "routes": [{"destination": "bad"}]}, routes_v4=[OURS_V4])
    assert result["changed"] is False and module.batches == []
    assert result["routes"] == [{"destination": "192.168.50.0/24", "via": "10.100.0.1", "dev": "nm0", "metric": 100}]


def test_missing_table_reads_as_empty():
    module = FakeModule(params={"table": "100", "state": "gathered"})

    def no_table(argv, **kwargs):
        return 2, "", "Error: ipv4: FIB table does not exist.\nDump terminated\n"
    module.run_command = no_table
    assert converge(module)["routes"] == []


def test_other_read_errors_are_reported():
    module = FakeModule(params={"state": "gathered"})
    module.run_command = lambda argv, **kwargs: (1, "", "Cannot open netlink socket")
    with pytest.raises(HostError, match="Cannot open netlink socket"):
        converge(module)
