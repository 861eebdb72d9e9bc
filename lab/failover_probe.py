# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traffic for failover measurements, run inside lab namespaces (standard library only).

    failover_probe.py udp-receive PORT SECONDS        print a JSON list of (seq, arrival time) when done
    failover_probe.py udp-send ADDRESS PORT INTERVAL COUNT
    failover_probe.py tcp-echo PORT SECONDS           echo every byte back (one connection at a time)
    failover_probe.py arp-ask INTERFACE SOURCE_IP ADDRESS INTERVAL COUNT
                                                      broadcast an ARP request for ADDRESS every INTERVAL
    failover_probe.py tcp-stream ADDRESS PORT INTERVAL SECONDS
                                                      send 64 bytes every INTERVAL, read the echo; print JSON
                                                      {ok, error, sent, echoed, max_stall}
Times are CLOCK_MONOTONIC, the same in every namespace of one machine. Every loop is bounded in time.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time


def udp_receive(port, seconds):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    sock.settimeout(0.2)
    print("ready", flush=True)
    arrivals = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data, peer = sock.recvfrom(64)
        except socket.timeout:
            continue
        arrivals.append((int(data.split(b" ")[0]), time.monotonic(), peer[0]))
    print(json.dumps(arrivals))


def udp_send(address, port, interval, count):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic()
    for seq in range(count):
        # Absolute schedule: a slow send does not shift the following ones.
        delay = start + seq * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            sock.sendto(f"{seq} probe".encode(), (address, port))
        except OSError:
            pass


def tcp_echo(port, seconds):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(4)
    server.settimeout(0.5)
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn, _peer = server.accept()
        except socket.timeout:
            continue
        conn.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                data = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            try:
                conn.sendall(data)
            except OSError:
                break
        conn.close()


def tcp_stream(address, port, interval, seconds):
    result = {"ok": False, "error": None, "sent": 0, "echoed": 0, "max_stall": 0.0}
    try:
        sock = socket.create_connection((address, port), timeout=3)
    except OSError as exc:
        result["error"] = f"connect: {exc}"
        print(json.dumps(result))
        return
    print("connected", flush=True)
    sock.settimeout(0.05)
    start = last_echo = time.monotonic()
    deadline = start + seconds
    next_send = start
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_send:
            try:
                sock.sendall(b"x" * 64)
                result["sent"] += 64
            except OSError as exc:
                result["error"] = f"send: {exc}"
                break
            next_send += interval
        try:
            data = sock.recv(65536)
            if not data:
                result["error"] = "closed by peer"
                break
            result["echoed"] += len(data)
            now = time.monotonic()
            result["max_stall"] = max(result["max_stall"], now - last_echo)
            last_echo = now
        except socket.timeout:
            continue
        except OSError as exc:
            result["error"] = f"recv: {exc}"
            break
    else:
        result["max_stall"] = max(result["max_stall"], time.monotonic() - last_echo)
        result["ok"] = result["error"] is None and result["echoed"] > 0
    sock.close()
    result["max_stall"] = round(result["max_stall"], 3)
    print(json.dumps(result))


def arp_ask(interface, source_ip, address, interval, count):
    """ARP requests at a steady rate (iputils arping sends at most one a second)."""
    with open(f"/sys/class/net/{interface}/address") as handle:
        mac = bytes(int(part, 16) for part in handle.read().strip().split(":"))
    frame = (b"\xff" * 6 + mac + struct.pack("!H", 0x0806)
             + struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, socket.inet_aton(source_ip), b"\x00" * 6,
                           socket.inet_aton(address))).ljust(60, b"\x00")
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
        raw.bind((interface, 0))
        start = time.monotonic()
        for index in range(count):
            delay = start + index * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            raw.send(frame)


def main(argv):
    mode, args = argv[0], argv[1:]
    if mode == "udp-receive":
        udp_receive(int(args[0]), float(args[1]))
    elif mode == "udp-send":
        udp_send(args[0], int(args[1]), float(args[2]), int(args[3]))
    elif mode == "tcp-echo":
        tcp_echo(int(args[0]), float(args[1]))
    elif mode == "arp-ask":
        arp_ask(args[0], args[1], args[2], float(args[3]), int(args[4]))
    elif mode == "tcp-stream":
        tcp_stream(args[0], int(args[1]), float(args[2]), float(args[3]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
