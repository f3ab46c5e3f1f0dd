#!/usr/bin/env python3
"""TCP and UDP echo service for the integration tests, run inside a network namespace.

    echo_server.py --address 10.77.0.2 --address fd77::2 --tcp 9000 --tcp 9001 --udp 9000

binds every (address, port) pair for each protocol, prints "READY" on stdout once all sockets
are bound (the tests wait for that line), then echoes until SIGTERM. TCP connections are echoed
byte for byte and closed when the client closes; UDP datagrams are sent back to their sender from
the address they were sent to (each socket is bound to one address). Standard library only.
"""

import argparse
import selectors
import signal
import socket
import sys


def family_of(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def make_socket(address, port, kind):
    sock = socket.socket(family_of(address), kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family_of(address) == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((address, port))
    if kind == socket.SOCK_STREAM:
        sock.listen(128)
    sock.setblocking(False)
    return sock


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", action="append", required=True)
    parser.add_argument("--tcp", type=int, action="append", default=[])
    parser.add_argument("--udp", type=int, action="append", default=[])
    args = parser.parse_args(argv)

    selector = selectors.DefaultSelector()
    for address in args.address:
        for port in args.tcp:
            selector.register(make_socket(address, port, socket.SOCK_STREAM),
                              selectors.EVENT_READ, "listener")
        for port in args.udp:
            selector.register(make_socket(address, port, socket.SOCK_DGRAM),
                              selectors.EVENT_READ, "udp")

    running = [True]

    def stop(_signum, _frame):
        running[0] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("READY", flush=True)

    while running[0]:
        for key, _ in selector.select(timeout=0.2):
            sock, role = key.fileobj, key.data
            try:
                if role == "listener":
                    connection, _ = sock.accept()
                    connection.setblocking(False)
                    selector.register(connection, selectors.EVENT_READ, "connection")
                elif role == "udp":
                    data, peer = sock.recvfrom(65535)
                    sock.sendto(data, peer)
                else:
                    data = sock.recv(65535)
                    if data:
                        sock.setblocking(True)
                        sock.settimeout(2.0)
                        sock.sendall(data)
                        sock.setblocking(False)
                    else:
                        selector.unregister(sock)
                        sock.close()
            except OSError:
                if role == "connection":
                    selector.unregister(sock)
                    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
