#!/usr/bin/env python3
"""Reads portwarden's event stream (GET /api/v1/events over a WebSocket), run inside the client
namespace by the tests.

    ws_events.py [--base http://127.0.0.1:817] [--origin ORIGIN] [--until EVENT] [--seconds S]

Prints one JSON object per line: first {"status": the handshake's HTTP status}, then every event
as received, then {"close": code, "reason": "..."} if the server closed the stream. Stops after an
event whose "event" is EVENT, at the server's close, or after S seconds. Standard library only:
the handshake and the frames (RFC 6455) by hand.
"""

import argparse
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.parse


def read_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


def read_frame(sock):
    first, second = read_exactly(sock, 2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", read_exactly(sock, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", read_exactly(sock, 8))[0]
    return first & 0x0F, read_exactly(sock, length)


def send_frame(sock, opcode, payload):
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="http://127.0.0.1:817")
    parser.add_argument("--origin")
    parser.add_argument("--until")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    base = urllib.parse.urlsplit(args.base)
    deadline = time.monotonic() + args.seconds
    sock = socket.create_connection((base.hostname, base.port), timeout=args.seconds)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /api/v1/events HTTP/1.1\r\nHost: {base.netloc}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    if args.origin:
        request += f"Origin: {args.origin}\r\n"
    sock.sendall((request + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1]) if head else 0
    print(json.dumps({"status": status}), flush=True)
    if status != 101:
        return 0
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            opcode, payload = read_frame(sock)
            if opcode == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                print(json.dumps({"close": code, "reason": payload[2:].decode()}), flush=True)
                send_frame(sock, 8, payload[:2])
                break
            if opcode == 9:
                send_frame(sock, 10, payload)
                continue
            if opcode != 1:
                continue
            event = json.loads(payload)
            print(json.dumps(event), flush=True)
            if args.until and event.get("event") == args.until:
                send_frame(sock, 8, struct.pack("!H", 1000))
                break
    except (OSError, ConnectionError):
        pass
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
