"""The netns connection wraps every command in `ip netns exec NAME /bin/sh -c CMD`."""

import os
import shlex
import subprocess
from unittest import mock

import pytest
from ansible.errors import AnsibleConnectionFailure
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader


def make_connection(namespace=None, remote_addr="gw1", private_dirs=None):
    play_context = PlayContext()
    play_context.remote_addr = remote_addr
    connection = connection_loader.get("netkit.egress.netns", play_context, None)
    var_options = {"ansible_netns_name": namespace} if namespace else {}
    if private_dirs is not None:
        var_options["ansible_netns_private_dirs"] = private_dirs
    connection.set_options(var_options=var_options)
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
    wrapped = captured_command(make_connection(remote_addr="lab-gw", private_dirs=[]), cmd)
    assert shlex.split(wrapped) == ["ip", "netns", "exec", "lab-gw", "/bin/sh", "-c", cmd]


@pytest.mark.parametrize("cmd", ["echo hi", "python3 -c 'print(1)'", "a && b; c | d", "echo \"$1\" '$0'"])
def test_private_directories_are_mounted_before_the_command(cmd):
    words = shlex.split(captured_command(make_connection(remote_addr="lab-gw"), cmd))
    assert words[:6] == ["ip", "netns", "exec", "lab-gw", "/bin/sh", "-c"]
    assert words[-2:] == ["netkit-netns", cmd]
    prelude = words[6]
    assert "mount --bind /etc/netns/lab-gw/netkit-egress /etc/netkit-egress" in prelude
    assert prelude.count("mount --bind") == 5
    # The whole /run is the host's own, mounted last (the other sources outside /etc live in the shared /run).
    assert prelude.endswith('mount --bind /run/netkit-egress-netns/lab-gw/run /run && exec /bin/sh -c "$1"')
    assert " /run/wireguard" not in prelude, "nothing is created in the controller's own /run"
    assert prelude.endswith('exec /bin/sh -c "$1"')


def test_paths_below_a_private_run_are_left_out_and_run_goes_last():
    words = shlex.split(captured_command(make_connection(private_dirs=["/run/wireguard", "/run", "/var/lib/x"]), "true"))
    assert words[6] == ("mkdir -p /run/netkit-egress-netns/gw1/var/lib/x /var/lib/x /run/netkit-egress-netns/gw1/run "
                        "/run && mount --bind /run/netkit-egress-netns/gw1/var/lib/x /var/lib/x && "
                        'mount --bind /run/netkit-egress-netns/gw1/run /run && exec /bin/sh -c "$1"')


@pytest.mark.parametrize("path", ["relative/dir", "/etc/../root", "/"])
def test_private_dirs_must_be_absolute_directories(path):
    with pytest.raises(AnsibleConnectionFailure, match="private_dirs"):
        captured_command(make_connection(private_dirs=[path]), "true")


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


def test_each_namespace_host_has_its_own_private_directories(lab):
    """Two namespace hosts write the same paths; each reads back its own file, as separate machines would."""
    lab.add_host("p1")
    lab.add_host("p2")
    for host in ("p1", "p2"):
        connection = make_connection(remote_addr=lab.ns(host))
        connection._connect()
        rc, _out, err = connection.exec_command(
            f"echo {host} > /etc/netkit-egress/who && mkdir -p /run/wireguard && echo {host} > /run/wireguard/who")
        assert rc == 0, err
    for host in ("p1", "p2"):
        connection = make_connection(remote_addr=lab.ns(host))
        rc, out, _err = connection.exec_command("cat /etc/netkit-egress/who /run/wireguard/who")
        assert out.split() == [host.encode(), host.encode()]
        # A plain `ip netns exec` finds the /etc copy too (iproute2 binds /etc/netns/NAME/*).
        plain = subprocess.run(["ip", "netns", "exec", lab.ns(host), "cat", "/etc/netkit-egress/who"],
                               capture_output=True, check=True).stdout
        assert plain.strip() == host.encode()
        # Each host's /run lives in its own store; nothing lands in the controller's own /run.
        with open(f"/run/netkit-egress-netns/{lab.ns(host)}/run/wireguard/who", encoding="utf-8") as handle:
            assert handle.read().strip() == host
    assert not os.path.exists("/run/wireguard/who")
    # A fresh namespace host's /run is empty, as after a boot: what it holds was made there.
    fresh = make_connection(remote_addr=lab.ns("p1"))
    assert fresh.exec_command("ls /run")[1].split() == [b"wireguard"]
