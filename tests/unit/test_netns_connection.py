"""The netns connection wraps every command in `ip netns exec NAME /bin/sh -c CMD`."""

import shlex
import subprocess
from unittest import mock

import pytest
from ansible.errors import AnsibleConnectionFailure
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader


def make_connection(namespace=None, remote_addr="gw1"):
    play_context = PlayContext()
    play_context.remote_addr = remote_addr
    connection = connection_loader.get("netkit.egress.netns", play_context, None)
    connection.set_options(var_options={"ansible_netns_name": namespace} if namespace else {})
    return connection


def captured_command(connection, cmd):
    with mock.patch("ansible.plugins.connection.local.subprocess.Popen") as popen, \
            mock.patch.object(connection, "_connected", True):
        process = popen.return_value
        process.communicate.return_value = (b"out", b"")
        process.returncode = 0
        process.stdout = process.stderr = None
        with mock.patch.object(connection, "_ensure_become_success", return_value=(b"", b"")):
            connection.exec_command(cmd)
        return popen.call_args[0][0]


@pytest.mark.parametrize("cmd", ["echo hi", "python3 -c 'print(1)'", "a && b; c | d"])
def test_command_runs_inside_the_namespace_of_ansible_host(cmd):
    wrapped = captured_command(make_connection(remote_addr="lab-gw"), cmd)
    assert shlex.split(wrapped) == ["ip", "netns", "exec", "lab-gw", "/bin/sh", "-c", cmd]


def test_explicit_namespace_option_wins_over_ansible_host():
    wrapped = captured_command(make_connection(namespace="other", remote_addr="gw1"), "true")
    assert shlex.split(wrapped)[3] == "other"


@pytest.mark.parametrize("name", ["bad name", "x;reboot", "../etc", "a$(id)", ".."])
def test_hostile_namespace_names_are_refused(name):
    with pytest.raises(AnsibleConnectionFailure, match="invalid namespace name"):
        make_connection(remote_addr=name)._namespace()


def test_missing_namespace_is_unreachable():
    connection = make_connection(remote_addr="netkit-no-such-namespace")
    with pytest.raises(AnsibleConnectionFailure, match="does not exist"):
        connection._connect()


def test_runs_for_real_in_a_namespace(lab):
    lab.add_host("c1")
    connection = make_connection(remote_addr=lab.ns("c1"))
    connection._connect()
    rc, out, _err = connection.exec_command("ip -o link show | wc -l")
    assert rc == 0
    # A fresh namespace has only its loopback interface, the root namespace has more.
    assert out.strip() == b"1"
    assert subprocess.run(["ip", "-o", "link", "show"], capture_output=True, check=True).stdout.count(b"\n") >= 1
