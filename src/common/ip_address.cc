#include "common/ip_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace pw {
namespace {

constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// FNV-1a over the significant bytes: cheap, and good enough for hash-table buckets.
std::size_t fnv1a(std::span<const std::uint8_t> bytes, std::size_t seed) {
    std::size_t hash = seed;
    for (const std::uint8_t byte : bytes) {
        hash = (hash ^ byte) * 1099511628211ULL;
    }
    return hash;
}

} // namespace

IpAddress IpAddress::from_v4_bytes(std::span<const std::uint8_t, 4> bytes) {
    IpAddress address;
    address.family_ = IpFamily::V4;
    std::ranges::copy(bytes, address.bytes_.begin());
    return address;
}

IpAddress IpAddress::from_v6_bytes(std::span<const std::uint8_t, 16> bytes) {
    if (std::ranges::equal(kV4MappedPrefix, bytes.first<12>())) {
        return from_v4_bytes(bytes.subspan<12, 4>());
    }
    IpAddress address;
    address.family_ = IpFamily::V6;
    std::ranges::copy(bytes, address.bytes_.begin());
    return address;
}

Result<IpAddress> IpAddress::parse(std::string_view text) {
    // inet_pton needs a NUL-terminated string; anything longer than an address is not one. An
    // embedded NUL would end the text early for inet_pton ("1.2.3.4\0junk" from a JSON "\u0000").
    std::array<char, kMaxTextLength> buffer{};
    if (text.empty() || text.size() >= buffer.size() || text.find('\0') != std::string_view::npos) {
        return fail("invalid IP address '" + std::string(text) + "'");
    }
    std::ranges::copy(text, buffer.begin());
    std::array<std::uint8_t, 16> bytes{};
    if (::inet_pton(AF_INET, buffer.data(), bytes.data()) == 1) {
        return from_v4_bytes(std::span<const std::uint8_t, 4>(bytes.data(), 4));
    }
    if (::inet_pton(AF_INET6, buffer.data(), bytes.data()) == 1) {
        return from_v6_bytes(bytes);
    }
    return fail("invalid IP address '" + std::string(text) + "'");
}

bool IpAddress::is_loopback() const {
    if (is_v4()) {
        return bytes_[0] == 127;
    }
    static constexpr std::array<std::uint8_t, 16> kLoopbackV6 = {0, 0, 0, 0, 0, 0, 0, 0,
                                                                 0, 0, 0, 0, 0, 0, 0, 1};
    return bytes_ == kLoopbackV6;
}

bool IpAddress::is_unspecified() const {
    return std::ranges::all_of(bytes_, [](std::uint8_t byte) { return byte == 0; });
}

std::string_view IpAddress::format(std::array<char, kMaxTextLength>& buffer) const {
    const char* text =
        ::inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buffer.data(), buffer.size());
    // inet_ntop cannot fail with a valid family and a buffer of INET6_ADDRSTRLEN.
    return text == nullptr ? std::string_view{} : std::string_view(buffer.data());
}

std::string IpAddress::to_string() const {
    std::array<char, kMaxTextLength> buffer{};
    return std::string(format(buffer));
}

std::size_t IpAddress::hash() const {
    return fnv1a(bytes(), is_v4() ? 14695981039346656037ULL : 1469598103934665603ULL);
}

Result<Cidr> Cidr::parse(std::string_view text) {
    const auto slash = text.find('/');
    auto address = IpAddress::parse(text.substr(0, slash));
    if (!address) {
        return std::unexpected(address.error());
    }
    // An IPv4-mapped block ("::ffff:10.0.0.0/104") folds to IPv4 like its address did, so its
    // prefix length counts from bit 96 of the IPv6 form.
    const bool v4_mapped =
        address->is_v4() && text.substr(0, slash).find(':') != std::string_view::npos;
    const unsigned min_written = v4_mapped ? 96 : 0;
    const unsigned max_written = address->is_v4() && !v4_mapped ? 32 : 128;
    unsigned written = max_written;
    if (slash != std::string_view::npos) {
        const std::string_view digits = text.substr(slash + 1);
        const auto* end = digits.data() + digits.size();
        // NOLINTNEXTLINE(bugprone-suspicious-stringview-data-usage): [data, end) is bounded
        const auto [ptr, error] = std::from_chars(digits.data(), end, written);
        if (digits.empty() || error != std::errc{} || ptr != end || written < min_written ||
            written > max_written) {
            return fail("invalid prefix length in '" + std::string(text) + "' (" +
                        std::to_string(min_written) + "-" + std::to_string(max_written) + ")");
        }
    }
    const unsigned max_length = address->is_v4() ? 32 : 128;
    const unsigned length = written - min_written;
    // Clear the host bits so that 10.1.2.3/8 and 10.0.0.0/8 are the same block.
    std::array<std::uint8_t, 16> bytes{};
    const auto source = address->bytes();
    std::ranges::copy(source, bytes.begin());
    for (unsigned bit = length; bit < max_length; ++bit) {
        bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80U >> (bit % 8)));
    }
    const IpAddress network =
        address->is_v4()
            ? IpAddress::from_v4_bytes(std::span<const std::uint8_t, 4>(bytes.data(), 4))
            : IpAddress::from_v6_bytes(bytes);
    return Cidr{.network = network, .prefix_length = static_cast<std::uint8_t>(length)};
}

bool Cidr::contains(const IpAddress& address) const {
    if (address.family() != network.family()) {
        return false;
    }
    const auto wanted = network.bytes();
    const auto given = address.bytes();
    const unsigned full_bytes = prefix_length / 8U;
    if (std::memcmp(wanted.data(), given.data(), full_bytes) != 0) {
        return false;
    }
    const unsigned rest_bits = prefix_length % 8U;
    if (rest_bits == 0) {
        return true;
    }
    const auto mask = static_cast<std::uint8_t>(0xFFU << (8U - rest_bits));
    return (wanted[full_bytes] & mask) == (given[full_bytes] & mask);
}

std::string Cidr::to_string() const {
    return network.to_string() + "/" + std::to_string(prefix_length);
}

} // namespace pw
