#!/usr/bin/env python3
"""One network probe, run inside a network namespace by the integration tests.

Prints exactly one JSON object on stdout:
    {"outcome": "ok" | "refused" | "unreachable" | "timeout" | "error", "elapsed": seconds,
     "local_ip": ..., "local_port": ..., "detail": "..."}

Outcomes:
    ok           the echo came back (TCP/UDP) or the echo reply arrived (ping)
    refused      ECONNREFUSED: the peer answered with RST / ICMP port unreachable
    unreachable  EHOSTUNREACH, ENETUNREACH, EACCES or EPERM, or an ICMP destination-unreachable
                 for our ping: what a REJECT (icmp-host-prohibited / icmp6-adm-prohibited)
                 or a synchronous local drop looks like to an application
    timeout      nothing came back within --timeout
    error        anything else (detail says what)

Modes:
    tcp HOST PORT      connect, then --exchanges round trips of --size bytes each
    udp HOST PORT      connected UDP socket (so ICMP errors surface as errno), one datagram
    ping HOST          one ICMP / ICMPv6 echo request over a raw socket
    malformed HOST     one IPv4 packet with protocol 6 and a 4-byte (truncated) TCP header,
                       sent through socket(AF_INET, SOCK_RAW, IPPROTO_RAW)

Standard library only.
"""

import argparse
import errno
import ipaddress
import json
import os
import random
import socket
import struct
import sys
import time

UNREACHABLE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM}


def classify_errno(number):
    if number == errno.ECONNREFUSED:
        return "refused"
    if number in UNREACHABLE_ERRNOS:
        return "unreachable"
    if number in (errno.ETIMEDOUT, errno.EAGAIN):
        return "timeout"
    return "error"


class Outcome(Exception):
    """Raised to finish the probe with a given outcome."""

    def __init__(self, outcome, detail=""):
        super().__init__(outcome)
        self.outcome = outcome
        self.detail = detail


def family_of(host):
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


def remaining(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise Outcome("timeout", "deadline passed")
    return left


def from_os_error(error, what):
    if isinstance(error, socket.timeout):
        return Outcome("timeout", f"{what}: timed out")
    number = error.errno or 0
    name = errno.errorcode.get(number, str(number))
    return Outcome(classify_errno(number), f"{what}: {name} {os.strerror(number)}")


def payload_for(index, size):
    seed = f"pwt-{index}-".encode()
    return (seed * (size // len(seed) + 1))[:size]


def receive_exactly(sock, count, deadline):
    data = b""
    while len(data) < count:
        sock.settimeout(remaining(deadline))
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise Outcome("error", f"connection closed after {len(data)} of {count} bytes")
        data += chunk
    return data


def probe_tcp(args, result, deadline):
    sock = socket.socket(family_of(args.host), socket.SOCK_STREAM)
    try:
        # Bound before connect() so that the local port is known even when connect() fails:
        # the tests match it against the daemon's events.
        sock.bind((args.bind or ("::" if sock.family == socket.AF_INET6 else "0.0.0.0"), 0))
        result["local_ip"], result["local_port"] = sock.getsockname()[:2]
        sock.settimeout(remaining(deadline))
        try:
            sock.connect((args.host, args.port))
        except OSError as error:
            raise from_os_error(error, "connect") from None
        result["local_ip"] = sock.getsockname()[0]
        for index in range(args.exchanges):
            payload = payload_for(index, args.size)
            try:
                sock.settimeout(remaining(deadline))
                sock.sendall(payload)
                echoed = receive_exactly(sock, len(payload), deadline)
            except OSError as error:
                raise from_os_error(error, f"exchange {index}") from None
            if echoed != payload:
                raise Outcome("error", f"exchange {index}: echo differs")
        result["exchanges"] = args.exchanges
        # An orderly close: our FIN, the server's FIN and the last ACK are part of the
        # connection, so the packet counts in the tests include them deterministically.
        sock.shutdown(socket.SHUT_WR)
        try:
            sock.settimeout(min(remaining(deadline), 1.0))
            sock.recv(1)
        except OSError:
            pass
    finally:
        sock.close()


def probe_udp(args, result, deadline):
    sock = socket.socket(family_of(args.host), socket.SOCK_DGRAM)
    try:
        if args.bind:
            sock.bind((args.bind, 0))
        try:
            # connect() makes the kernel report ICMP errors for this flow as errno.
            sock.connect((args.host, args.port))
            result["local_ip"], result["local_port"] = sock.getsockname()[:2]
            payload = payload_for(0, args.size)
            # Exactly one datagram: a second send would meet a synchronous local drop
            # (EPERM) and turn a "drop" into an "unreachable".
            sock.send(payload)
            sock.settimeout(remaining(deadline))
            echoed = sock.recv(65535)
        except OSError as error:
            raise from_os_error(error, "udp") from None
        if echoed != payload:
            raise Outcome("error", "echo differs")
    finally:
        sock.close()


def icmp_checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def probe_ping(args, result, deadline):
    family = family_of(args.host)
    v6 = family == socket.AF_INET6
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    echo_request, echo_reply, dest_unreach = (128, 129, 1) if v6 else (8, 0, 3)
    ident = random.randrange(1, 0xFFFF)
    sequence = 1
    body = b"pwt-ping-" + struct.pack("!d", time.time())
    header = struct.pack("!BBHHH", echo_request, 0, 0, ident, sequence)
    if not v6:  # the kernel computes the ICMPv6 checksum itself (RFC 3542 section 3.1)
        header = struct.pack("!BBHHH", echo_request, 0, icmp_checksum(header + body), ident,
                             sequence)
    sock = socket.socket(family, socket.SOCK_RAW, proto)
    try:
        if args.bind:
            sock.bind((args.bind, 0))
        result["icmp_id"] = ident
        try:
            sock.sendto(header + body, (args.host, 0))
        except OSError as error:
            raise from_os_error(error, "sendto") from None
        while True:
            try:
                sock.settimeout(remaining(deadline))
                packet, _ = sock.recvfrom(65535)
            except OSError as error:
                raise from_os_error(error, "recv") from None
            # IPv4 raw sockets deliver the IP header, IPv6 ones do not.
            icmp = packet if v6 else packet[(packet[0] & 0x0F) * 4:]
            if len(icmp) < 8:
                continue
            kind, code = icmp[0], icmp[1]
            if kind == echo_reply:
                got_id, got_seq = struct.unpack("!HH", icmp[4:8])
                if (got_id, got_seq) == (ident, sequence):
                    return
                continue
            if kind == dest_unreach:
                inner = icmp[8:]
                if v6:
                    inner_icmp = inner[40:]
                else:
                    inner_icmp = inner[(inner[0] & 0x0F) * 4:] if inner else b""
                if len(inner_icmp) >= 6 and struct.unpack("!H", inner_icmp[4:6])[0] == ident:
                    raise Outcome("unreachable", f"icmp destination unreachable code {code}")
    finally:
        sock.close()


def probe_malformed(args, result, deadline):
    """An IPv4 packet that claims TCP but carries only 4 bytes of TCP header."""
    del deadline
    source = args.bind or "0.0.0.0"
    tcp_fragment = struct.pack("!HH", 40000, args.port)  # source and destination port only
    total_length = 20 + len(tcp_fragment)
    ip_header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total_length, random.randrange(1, 0xFFFF), 0, 64,
        socket.IPPROTO_TCP, 0, socket.inet_aton(source), socket.inet_aton(args.host))
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        # IPPROTO_RAW implies IP_HDRINCL; the kernel fills in the checksum (and the source
        # address when it is 0.0.0.0).
        try:
            sent = sock.sendto(ip_header + tcp_fragment, (args.host, 0))
        except OSError as error:
            raise from_os_error(error, "sendto") from None
        result["sent_bytes"] = sent
    finally:
        sock.close()


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["tcp", "udp", "ping", "malformed"])
    parser.add_argument("host")
    parser.add_argument("port", type=int, nargs="?", default=0)
    parser.add_argument("--timeout", type=float, default=1.5)
    parser.add_argument("--exchanges", type=int, default=1)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--bind", default="")
    args = parser.parse_args(argv)

    result = {"mode": args.mode, "host": args.host, "port": args.port, "outcome": "ok",
              "detail": "", "local_ip": None, "local_port": None}
    handlers = {"tcp": probe_tcp, "udp": probe_udp, "ping": probe_ping,
                "malformed": probe_malformed}
    start = time.monotonic()
    deadline = start + args.timeout
    try:
        handlers[args.mode](args, result, deadline)
    except Outcome as outcome:
        result["outcome"], result["detail"] = outcome.outcome, outcome.detail
    except OSError as error:
        outcome = from_os_error(error, "setup")
        result["outcome"], result["detail"] = outcome.outcome, outcome.detail
    result["elapsed"] = round(time.monotonic() - start, 4)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
