"""A tiny TCP server that answers each connection with the source address it sees, then closes.

Bounded: it exits after ``--lifetime`` seconds or ``--max-connections`` connections.
"""

import argparse
import socket
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--bind", default="::")
    parser.add_argument("--lifetime", type=float, default=900)
    parser.add_argument("--max-connections", type=int, default=100000)
    args = parser.parse_args()

    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind((args.bind, args.port))
    server.listen(128)
    deadline = time.monotonic() + args.lifetime
    served = 0
    while served < args.max_connections:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        server.settimeout(remaining)
        try:
            conn, peer = server.accept()
        except socket.timeout:
            break
        with conn:
            conn.sendall(f"{peer[0]}\n".encode())
        print(peer[0], flush=True)
        served += 1
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
