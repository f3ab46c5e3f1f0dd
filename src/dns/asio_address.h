#pragma once

#include <cstdint>
#include <cstring>
#include <span>

#include <boost/asio/ip/address.hpp>

#include "common/ip_address.h"

namespace pw::dns {

// Between our IpAddress and Asio's address, for the sockets of the nameserver and the
// upstream transports. Header-only: both sides are a few bytes copied.
inline boost::asio::ip::address to_asio(const IpAddress& address) {
    if (address.is_v4()) {
        boost::asio::ip::address_v4::bytes_type bytes{};
        std::memcpy(bytes.data(), address.bytes().data(), bytes.size());
        return boost::asio::ip::address_v4(bytes);
    }
    boost::asio::ip::address_v6::bytes_type bytes{};
    std::memcpy(bytes.data(), address.bytes().data(), bytes.size());
    return boost::asio::ip::address_v6(bytes);
}

inline IpAddress from_asio(const boost::asio::ip::address& address) {
    if (address.is_v4()) {
        const auto bytes = address.to_v4().to_bytes();
        return IpAddress::from_v4_bytes(std::span<const std::uint8_t, 4>(bytes));
    }
    const auto bytes = address.to_v6().to_bytes();
    return IpAddress::from_v6_bytes(std::span<const std::uint8_t, 16>(bytes));
}

} // namespace pw::dns
