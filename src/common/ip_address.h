#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"

namespace pw {

enum class IpFamily : std::uint8_t { V4, V6 };

// An IPv4 or IPv6 address as a value. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are folded
// to IPv4 on construction, so that a dual-stack socket and the IPv4 packet it sends compare
// equal everywhere (connection keys, socket tables, rules).
class IpAddress {
public:
    static constexpr std::size_t kMaxTextLength = 46; // INET6_ADDRSTRLEN, with the NUL

    IpAddress() = default; // 0.0.0.0
    [[nodiscard]] static IpAddress from_v4_bytes(std::span<const std::uint8_t, 4> bytes);
    [[nodiscard]] static IpAddress from_v6_bytes(std::span<const std::uint8_t, 16> bytes);
    // Accepts dotted IPv4 and any RFC 4291 IPv6 text; no brackets, no zone index.
    [[nodiscard]] static Result<IpAddress> parse(std::string_view text);

    [[nodiscard]] IpFamily family() const { return family_; }
    [[nodiscard]] bool is_v4() const { return family_ == IpFamily::V4; }
    // 4 bytes for IPv4, 16 for IPv6, network byte order.
    [[nodiscard]] std::span<const std::uint8_t> bytes() const {
        return {bytes_.data(), is_v4() ? std::size_t{4} : std::size_t{16}};
    }
    [[nodiscard]] bool is_loopback() const;
    [[nodiscard]] bool is_unspecified() const;

    // Writes the text form into `buffer` without allocating; returns the written part.
    [[nodiscard]] std::string_view format(std::array<char, kMaxTextLength>& buffer) const;
    [[nodiscard]] std::string to_string() const;

    friend bool operator==(const IpAddress&, const IpAddress&) = default;
    friend std::strong_ordering operator<=>(const IpAddress&, const IpAddress&) = default;

    [[nodiscard]] std::size_t hash() const;

private:
    IpFamily family_ = IpFamily::V4;
    std::array<std::uint8_t, 16> bytes_{}; // IPv4 uses the first 4 bytes; the rest stay zero
};

// An address block such as 10.0.0.0/8 or fd00::/8. A bare address is a /32 or /128.
struct Cidr {
    IpAddress network; // host bits are cleared by parse()
    std::uint8_t prefix_length = 0;

    [[nodiscard]] static Result<Cidr> parse(std::string_view text);
    [[nodiscard]] bool contains(const IpAddress& address) const;
    [[nodiscard]] std::string to_string() const;

    friend bool operator==(const Cidr&, const Cidr&) = default;
};

} // namespace pw

template <>
struct std::hash<pw::IpAddress> {
    std::size_t operator()(const pw::IpAddress& address) const noexcept { return address.hash(); }
};
