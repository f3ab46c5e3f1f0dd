#!/usr/bin/env python3
"""Writes the seed corpus of packet_parser_fuzz: one real-looking packet per file.

The files are checked in; re-run this script only to change them:
    python3 tests/fuzz/make_packet_seeds.py tests/fuzz/corpus/packet_parser
Seeds only need to reach every branch of the parser once; libFuzzer mutates from there.
"""

import pathlib
import struct
import sys

CLIENT_V4 = bytes([192, 0, 2, 10])
SERVER_V4 = bytes([198, 51, 100, 7])
CLIENT_V6 = bytes.fromhex("20010db800000000000000000000000a")  # 2001:db8::a
SERVER_V6 = bytes.fromhex("20010db8000000000000000000005307")  # 2001:db8::5307
MAPPED_V6 = bytes(10) + b"\xff\xff" + CLIENT_V4

TCP, UDP, ICMP, ICMPV6, SCTP, UDPLITE, GRE = 6, 17, 1, 58, 132, 136, 47
HOP_BY_HOP, ROUTING, FRAGMENT, ESP, AH, NO_NEXT, DEST_OPTS = 0, 43, 44, 50, 51, 59, 60


def ipv4(protocol, payload, options=b"", fragment=0, total=None):
    header_length = 20 + len(options)
    total = header_length + len(payload) if total is None else total
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | header_length // 4, 0, total, 0x1234,
                         fragment, 64, protocol, 0, CLIENT_V4, SERVER_V4)
    return header + options + payload


def ipv6(next_header, payload, source=CLIENT_V6, destination=SERVER_V6):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), next_header, 64, source,
                       destination) + payload


def tcp(source_port, destination_port, flags, options=b"", data=b""):
    offset = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", source_port, destination_port, 1, 0, offset << 4, flags,
                       65535, 0, 0) + options + data


def udp(source_port, destination_port, data=b""):
    return struct.pack("!HHHH", source_port, destination_port, 8 + len(data), 0) + data


def icmp(icmp_type, code):
    return struct.pack("!BBHHH", icmp_type, code, 0, 7, 1)


def extension(next_header, units):
    body = bytes([next_header, units, 1, (units + 1) * 8 - 4])
    return body + bytes((units + 1) * 8 - 4)


def fragment_header(next_header, offset_units, more):
    return struct.pack("!BBHI", next_header, 0, (offset_units << 3) | int(more), 0x1234)


DNS_QUERY = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")

SEEDS = {
    "ipv4_tcp_syn": ipv4(TCP, tcp(40000, 443, 0x02, bytes([2, 4, 5, 180, 1, 1, 4, 2]))),
    "ipv4_tcp_data": ipv4(TCP, tcp(40000, 443, 0x18, data=b"GET / HTTP/1.1\r\n")),
    "ipv4_udp_dns": ipv4(UDP, udp(53000, 53, DNS_QUERY)),
    "ipv4_udplite": ipv4(UDPLITE, udp(1000, 2000, b"x")),
    "ipv4_sctp": ipv4(SCTP, struct.pack("!HHII", 3868, 3868, 0, 0)),
    "ipv4_icmp_echo": ipv4(ICMP, icmp(8, 0)),
    "ipv4_gre": ipv4(GRE, bytes([0, 0, 8, 0])),
    "ipv4_options_udp": ipv4(UDP, udp(68, 67), options=bytes([7, 7, 4, 0, 0, 0, 0, 0])),
    "ipv4_first_fragment": ipv4(UDP, udp(5000, 5001, bytes(32)), fragment=0x2000),
    "ipv4_later_fragment": ipv4(UDP, bytes(16), fragment=185),
    "ipv4_cut_payload": ipv4(TCP, tcp(1, 443, 0x10), total=1500),
    "ipv6_tcp_syn": ipv6(TCP, tcp(50000, 22, 0x02)),
    "ipv6_udp": ipv6(UDP, udp(546, 547, b"\x01\x02")),
    "ipv6_icmpv6_ns": ipv6(ICMPV6, icmp(135, 0) + bytes(16)),
    "ipv6_ext_chain": ipv6(HOP_BY_HOP, extension(DEST_OPTS, 0) + extension(ROUTING, 1)
                           + extension(FRAGMENT, 0) + fragment_header(AH, 0, True)
                           + bytes([UDP, 4, 0, 0]) + bytes(20) + udp(4000, 4001)),
    "ipv6_later_fragment": ipv6(FRAGMENT, fragment_header(UDP, 181, False) + bytes(16)),
    "ipv6_esp": ipv6(ESP, bytes(24)),
    "ipv6_no_next_header": ipv6(NO_NEXT, b""),
    "ipv6_v4_mapped": ipv6(TCP, tcp(40000, 443, 0x02), MAPPED_V6, MAPPED_V6),
    "mark_1711": struct.pack("!I", 1711),
}


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "corpus/packet_parser")
    out.mkdir(parents=True, exist_ok=True)
    for name, data in SEEDS.items():
        (out / name).write_bytes(data)
    print(f"wrote {len(SEEDS)} seeds to {out}")


if __name__ == "__main__":
    main()
