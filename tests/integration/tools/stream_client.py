#!/usr/bin/env python3
"""A long-running exchange with an echo service, for the re-evaluation tests.

    stream_client.py tcp|udp HOST PORT [--interval 0.05] [--duration 30] [--timeout 0.5]

TCP: one connection, kept open; UDP: one connected socket, kept open (one conntrack flow). Every
--interval it sends a small message and waits up to --timeout for its echo, then prints one JSON
line: {"seq": n, "ok": true|false, "at": time.monotonic(), "detail": "..."} (CLOCK_MONOTONIC is
system-wide, so the test compares "at" with its own clock). The first line is
{"ready": true, "localPort": ...} once the socket is connected (TCP) or created (UDP). TCP stops
after the first error (a reset or refused connection cannot carry data any more); UDP goes on.
Standard library only.
"""

import argparse
import json
import socket
import sys
import time


def emit(record):
    print(json.dumps(record), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("protocol", choices=("tcp", "udp"))
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=0.5)
    args = parser.parse_args()
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    kind = socket.SOCK_STREAM if args.protocol == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    sock.settimeout(args.timeout if args.protocol == "udp" else 5.0)
    try:
        sock.connect((args.host, args.port))
    except OSError as error:
        emit({"ready": False, "detail": f"{type(error).__name__}: {error}"})
        return 1
    emit({"ready": True, "localPort": sock.getsockname()[1]})
    sock.settimeout(args.timeout)
    end = time.monotonic() + args.duration
    seq = 0
    while time.monotonic() < end:
        seq += 1
        message = f"{seq:08d}\n".encode()
        try:
            sock.send(message)
            received = b""
            while len(received) < len(message):
                chunk = sock.recv(len(message) - len(received))
                if not chunk:
                    raise ConnectionError("closed by the peer")
                received += chunk
            emit({"seq": seq, "ok": received == message, "at": time.monotonic(), "detail": ""})
        except (OSError, ConnectionError) as error:
            emit({"seq": seq, "ok": False, "at": time.monotonic(),
                  "detail": f"{type(error).__name__}: {error}"})
            if args.protocol == "tcp" and not isinstance(error, socket.timeout):
                return 0
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
