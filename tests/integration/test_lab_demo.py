"""The lab demo (`./run lab`) end to end, under its own prefix so it never meets a user's lab."""

import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(REPO_ROOT, "lab", "lab.py")


def lab_py(*args, timeout=120):
    return subprocess.run([sys.executable, LAB, *args], capture_output=True, text=True, timeout=timeout, check=False)


def table_rows(stdout, first_header):
    """The demo's table whose first column is ``first_header``, as {(name, address): (server saw, verdict)}."""
    rows, in_table = {}, False
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) != 4:
            in_table = False
        elif cells[0] == first_header:
            in_table = True
        elif in_table:
            rows[(cells[0], cells[1])] = (cells[2], cells[3])
    return rows


def test_demo_shows_the_server_saw_the_gateways_address(tmp_path):
    prefix = f"d{os.getpid() % 100000}"  # lab.py adds "c" for the egress NAT cluster: at most 7 characters
    inventory = str(tmp_path / "inventory.yml")
    try:
        first = lab_py("--prefix", prefix, "--inventory", inventory, "up-and-demo")
        assert first.returncode == 0, first.stdout + first.stderr
        assert table_rows(first.stdout, "member") == {
            ("m1", "10.100.0.11"): ("192.168.50.1", "yes"),
            ("m1", "fd00:100::11"): ("2001:db8:50::1", "yes"),
            ("m2", "10.100.0.12"): ("192.168.50.1", "yes"),
            ("m2", "fd00:100::12"): ("2001:db8:50::1", "yes"),
        }
        assert f"{prefix}-gw" in open(inventory).read()
        # The egress NAT cluster beside it: the selected pods leave from the first floating IP.
        assert table_rows(first.stdout, "pod") == {
            ("p1a", "10.10.1.10"): ("192.168.1.100", "floating IP (EgressNATPolicy)"),
            ("p1b", "10.10.1.11"): ("192.168.1.1", "node node1"),
            ("p2a", "10.10.2.10"): ("192.168.1.100", "floating IP (EgressNATPolicy)"),
            ("p2b", "10.10.2.11"): ("192.168.1.2", "node node2"),
        }

        # Re-running is safe: it rebuilds the lab and shows the same table.
        again = lab_py("--prefix", prefix, "--inventory", inventory, "up-and-demo")
        assert again.returncode == 0, again.stdout + again.stderr
        assert table_rows(again.stdout, "member") == table_rows(first.stdout, "member")
        assert table_rows(again.stdout, "pod") == table_rows(first.stdout, "pod")
    finally:
        down = lab_py("--prefix", prefix, "down")
    assert down.returncode == 0, down.stderr
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"{prefix}-" not in namespaces and f"{prefix}c-" not in namespaces
