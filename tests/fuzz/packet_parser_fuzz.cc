// libFuzzer target for parse_packet(): the first thing that touches bytes from the network.
// Built with clang++-19 -fsanitize=fuzzer,address,undefined by tests/fuzz/CMakeLists.txt.
// Besides "no crash, no UB", it checks the promises PacketInfo makes to its readers.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "packet/packet_info.h"
#include "packet/packet_parser.h"
#include "packet/verdict.h"

namespace {

// A fuzz finding must stop the run with a message naming the broken promise.
void require(bool condition, const char* promise) {
    if (!condition) {
        // NOLINTNEXTLINE(modernize-use-std-print): libstdc++ 12 has no <print>
        std::fprintf(stderr, "packet_parser_fuzz: invariant violated: %s\n", promise);
        std::abort();
    }
}

void check_invariants(std::span<const std::uint8_t> bytes, const pw::packet::PacketInfo& info) {
    using pw::packet::PacketInfo;
    require(info.payload_offset <= bytes.size(), "payload_offset <= size");
    require(bytes[0] >> 4U == (info.ip_family == pw::IpFamily::V4 ? 4U : 6U),
            "ip_family matches the version nibble");
    // IPv4 headers hold IPv4 addresses; IPv6 headers may fold v4-mapped ones to IPv4.
    if (info.ip_family == pw::IpFamily::V4) {
        require(info.source.is_v4() && info.destination.is_v4(), "IPv4 packet, IPv4 addresses");
        require(info.payload_offset >= 20, "IPv4 payload after the 20-byte header");
    } else {
        require(info.payload_offset >= 40, "IPv6 payload after the 40-byte header");
    }
    if (!info.has_ports() || info.is_later_fragment) {
        require(info.source_port == 0 && info.destination_port == 0, "no ports, ports are 0");
    }
    if (!info.is_icmp() || info.is_later_fragment) {
        require(info.icmp_type == 0 && info.icmp_code == 0, "not ICMP, type and code are 0");
    }
    if (info.protocol != pw::packet::protocol::kTcp || info.is_later_fragment) {
        require(!info.tcp_syn_only, "tcp_syn_only only for TCP");
    }
    // Formatting the addresses must work for whatever the parser produced.
    std::array<char, pw::IpAddress::kMaxTextLength> buffer{};
    require(!info.source.format(buffer).empty(), "source formats");
    require(!info.destination.format(buffer).empty(), "destination formats");
}

} // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> bytes(data, size);
    const auto info = pw::packet::parse_packet(bytes);
    if (info.has_value()) {
        require(size > 0, "an empty packet does not parse");
        check_invariants(bytes, *info);
    } else {
        require(!info.error().what.empty(), "errors say what is wrong");
    }

    // The mark table is the other pure thing a packet's fate passes through: any 32-bit value
    // read back from the kernel must map to a verdict that maps back to the same mark.
    if (size >= 4) {
        const std::uint32_t mark = (std::uint32_t{data[0]} << 24U) |
                                   (std::uint32_t{data[1]} << 16U) |
                                   (std::uint32_t{data[2]} << 8U) | data[3];
        if (const auto meaning = pw::packet::meaning_of_mark(mark)) {
            require(pw::packet::mark_for(meaning->verdict, meaning->persistence) == mark,
                    "meaning_of_mark and mark_for agree");
            require(!pw::packet::verdict_name(meaning->verdict).empty(), "verdicts have names");
        }
    }
    return 0;
}
